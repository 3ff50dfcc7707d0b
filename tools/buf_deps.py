"""Copies the googleapis protos imagegen imports out of the googleapis-common-protos wheel, for buf."""

from __future__ import annotations

import pathlib
import shutil
import sys

from tools.gen_protos import googleapis_include

IMPORTED = ["google/api/annotations.proto", "google/api/http.proto", "google/api/field_behavior.proto",
            "google/api/httpbody.proto"]  # fmt: skip


def main(out: pathlib.Path) -> None:
    for relative in IMPORTED:
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(googleapis_include() / relative, target)


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
