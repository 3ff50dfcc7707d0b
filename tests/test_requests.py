"""Reading a create as the app wrote it (no process started): Meteron's and Replicate's shapes, model-
native fields kept byte-for-value, image inputs found where each model server takes them, and every
way a request can be wrong answered with the field it concerns."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib

import pytest
from imagegen.generator.v1 import generator_pb2
from PIL import Image

from services.common.errors import InvalidArgument
from services.common.outbound import OutboundPolicy
from services.generator.inputs import check_image
from services.generator.requests import from_json_body, from_typed

ROOMFIX = {
    "version": "854e8727697a057c525cdb45ab037f64ecca770a1769cc52287c2e56472a247b",
    "input": {
        "image": "https://upcdn.io/W142hJk/raw/demo/room.jpg",
        "prompt": "a modern living room",
        "scale": 9,
        "a_prompt": "best quality, extremely detailed",
        "n_prompt": "longbody, lowres, bad anatomy",
    },
}
METERON_HEADERS = {"x-model": "roomfix", "x-user": "jane@example.com", "x-async": "false"}


def parse(body, headers=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return from_json_body(raw, "application/json", headers or {}, "procedural")


def png_bytes(width: int, height: int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_roomfix_request_reads_its_prompt_from_input_and_keeps_the_rest_as_sent():
    created = parse(ROOMFIX, METERON_HEADERS)
    spec = created.spec
    assert (spec.prompt, spec.model, spec.user, spec.version) == (
        "a modern living room",
        "roomfix",
        "jane@example.com",
        ROOMFIX["version"],
    )
    assert created.wait and spec.n == 1
    # The model server picks what RoomFix left out.
    assert (spec.width, spec.height, spec.HasField("seed")) == (0, 0, False)
    stored = json.loads(spec.input)
    assert stored == {**ROOMFIX["input"], "image": "imagegen:input/0"}
    [image] = created.images
    assert (image.pointer, image.role, image.text) == ("/image", "image", ROOMFIX["input"]["image"])
    # A URL-only request is recorded byte for byte.
    assert created.request_body == json.dumps(ROOMFIX).encode()


def test_native_numbers_stay_the_numbers_sent():
    big = 2**63 + 12345  # past a double's 53 bits and past int64
    created = parse({"prompt": "a", "input": {"steps": 30, "big": big, "cfg_scale": 7.5, "seed": 4294967295}})
    stored = json.loads(created.spec.input)
    assert stored["big"] == big and isinstance(stored["big"], int)
    assert str(big) in created.spec.input
    assert stored["cfg_scale"] == 7.5 and created.spec.seed == 4294967295


def test_top_level_common_fields_are_written_into_the_native_request():
    created = parse({"prompt": "a lake", "width": 512, "seed": 3, "input": {"steps": 20}})
    assert json.loads(created.spec.input) == {"steps": 20, "prompt": "a lake", "width": 512, "seed": 3}
    assert (created.spec.width, created.spec.height) == (512, 0)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"prompt": "a", "guidance": 7}, "guidance", "unknown field 'guidance'"),
        ({"prompt": "a", "input": {"prompt": "b"}}, "prompt", "given twice with different values"),
        ({"input": {"scale": 9}}, "prompt", "prompt is required"),
        ({"prompt": "a", "n": 2, "input": {"num_outputs": 3}}, "n", "input.num_outputs asks for 3"),
        ({"prompt": "a", "n": 2, "input": {"batch_size": 2, "n_iter": 2}}, "n", "asks for 4"),
        ({"prompt": "a", "input": ["not", "an", "object"]}, "input", "must be a JSON object"),
        ({"prompt": "a", "input": {"width": "wide"}}, "input.width", "must be an integer"),
        ({"prompt": "a", "model": "x", "cluster": "y"}, "cluster", "name different models"),
        ({"prompt": "a", "n": "two"}, "body", "does not match"),
        (b'{"prompt": "a", "input": {"x": NaN}}', "body", "not valid JSON"),
        (b"[1]", "body", "JSON object"),
        (b'{"prompt": "a", "input": ' + b'{"a": ' * 40 + b"1" + b"}" * 41, "body", "deeper than 32 levels"),
        (b"[" * 5000 + b"]" * 5000, "body", "deeper than 32 levels"),
    ],
)
def test_a_bad_create_names_what_is_wrong(body, field, words):
    with pytest.raises(InvalidArgument) as raised:
        parse(body)
    assert raised.value.field == field and words in raised.value.message


def test_counts_come_from_the_native_request_when_n_is_absent():
    assert parse({"prompt": "a", "input": {"num_outputs": 3}}).spec.n == 3
    assert parse({"prompt": "a", "input": {"batch_size": 2, "n_iter": 2}}).spec.n == 4
    assert parse({"prompt": "a", "n": 2, "input": {"n": 2}}).spec.n == 2


def test_cluster_is_meteron_s_name_for_the_model():
    assert parse({"prompt": "a", "cluster": "sdxl"}).spec.model == "sdxl"
    assert parse({"prompt": "a"}, {"x-cluster": "sdxl"}).spec.model == "sdxl"
    assert parse({"prompt": "a"}).spec.model == "procedural"


def test_automatic1111_images_are_found_with_their_roles_and_inline_ones_are_not_recorded():
    photo = base64.b64encode(png_bytes(64, 64)).decode()
    body = {
        "prompt": "a red sofa",
        "input": {
            "init_images": [photo],
            "mask": "data:image/png;base64," + photo,
            "denoising_strength": 0.6,
            "sampler_name": "DPM++ 2M",
            "alwayson_scripts": {
                "controlnet": {"args": [{"input_image": photo, "module": "canny", "model": "control_canny"}]}
            },
        },
    }
    created = parse(body)
    found = [(i.pointer, i.role) for i in created.images]
    assert found == [
        ("/init_images/0", "image"),
        ("/mask", "mask"),
        ("/alwayson_scripts/controlnet/args/0/input_image", "control"),
    ]
    stored = json.loads(created.spec.input)
    assert stored["init_images"] == ["imagegen:input/0"] and stored["mask"] == "imagegen:input/1"
    assert stored["alwayson_scripts"]["controlnet"]["args"][0]["model"] == "control_canny"
    assert photo not in created.request_body.decode()
    assert json.loads(created.request_body)["input"]["init_images"] == ["imagegen:input/0"]


def test_strings_that_are_not_images_pass_unchanged_even_under_image_keys():
    created = parse(
        {"prompt": "a", "input": {"image_size": "1024x1024", "lora_weights": "https://x/y.safetensors"}}
    )
    assert created.images == [] and json.loads(created.spec.input)["image_size"] == "1024x1024"


def test_top_level_images_and_mask_come_before_native_ones():
    created = parse({"prompt": "a", "inputImages": ["https://a/1.png"], "mask": "https://a/m.png"})
    assert [(i.pointer, i.role, i.text) for i in created.images] == [
        ("", "image", "https://a/1.png"),
        ("", "mask", "https://a/m.png"),
    ]


def test_the_typed_grpc_request_reads_the_same_as_the_json_one():
    typed = generator_pb2.CreateGenerationRequest(
        version=ROOMFIX["version"],
        input=json.dumps(ROOMFIX["input"]),
        model="roomfix",
        user="jane@example.com",
    )
    from_grpc = from_typed(typed, {}, "procedural")
    from_rest = parse(ROOMFIX, METERON_HEADERS)
    assert from_grpc.spec == from_rest.spec
    assert [i.text for i in from_grpc.images] == [i.text for i in from_rest.images]


def test_image_checks_refuse_a_decompression_bomb_by_its_header():
    # PNG headers that claim 5000×5000 and 50000×50000 pixels: refused before anything is decoded.
    def bomb(side: int) -> bytes:
        chunk = b"IHDR" + struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
        ihdr = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
        data = zlib.compress(b"\x00" * 64)
        idat = struct.pack(">I", len(data)) + b"IDAT" + data + struct.pack(">I", zlib.crc32(b"IDAT" + data))
        return b"\x89PNG\r\n\x1a\n" + ihdr + idat

    with pytest.raises(InvalidArgument, match="5000×5000 pixels; the limit is 4096×4096"):
        check_image(bomb(5000), "inputImages")
    with pytest.raises(InvalidArgument, match="far more pixels than it may have; the limit is 4096×4096"):
        check_image(bomb(50000), "inputImages")
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    with pytest.raises(InvalidArgument, match="GIF image; PNG, JPEG or WebP"):
        check_image(gif.getvalue(), "input.image")
    with pytest.raises(InvalidArgument, match=r"not a PNG, JPEG or WebP image \(it sent text/html\)"):
        check_image(b"<html>hello</html>", "input.image", got="text/html")
    assert check_image(png_bytes(64, 32), "x").width == 64


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "169.254.169.254",
        "::1",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "0.0.0.0",
    ],
)
def test_the_outbound_policy_refuses_addresses_that_are_not_public(address):
    assert OutboundPolicy().refusal(address) is not None
    assert (
        OutboundPolicy.parse(
            "127.0.0.0/8, 10.0.0.0/8, 192.168.0.0/16, 169.254.0.0/16, ::1/128, 100.64.0.0/10, 0.0.0.0/32"
        ).refusal(address)
        is None
    )


def test_the_outbound_policy_allows_public_addresses():
    assert OutboundPolicy().refusal("93.184.216.34") is None
    assert OutboundPolicy().refusal("2606:4700::1111") is None


def test_a_closed_deployment_reaches_only_its_allowed_networks():
    closed = OutboundPolicy.parse("10.0.0.0/8", public=False)
    assert closed.refusal("10.1.2.3") is None
    assert "reaches only its allowed networks" in closed.refusal("93.184.216.34")
    assert "not a public address" in closed.refusal("127.0.0.1")
