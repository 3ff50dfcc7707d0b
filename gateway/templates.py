"""`google.api.http` path templates, parsed and matched as grpc-httpjson-transcoding does.

Template = "/" Segments [":" Verb]; Segment = "*" | "**" | LITERAL | "{" FieldPath ["=" Segments] "}".
Matching order per segment is literal, then `*`, then `**`, with backtracking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

# RFC 6570 reserved characters stay percent-encoded in multi-segment variables
# (Envoy's default url_unescape_spec, ALL_CHARACTERS_EXCEPT_RESERVED).
_RESERVED = set(":/?#[]@!$&'()*+,;=")
_PCT = re.compile(r"%[0-9A-Fa-f]{2}")


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Variable:
    field_path: tuple[str, ...]
    start: int  # index of its first segment
    end: int  # one past its last segment


@dataclass
class Template:
    segments: list[str]  # "*", "**", or a literal
    variables: list[Variable]
    verb: str

    def single(self, variable: Variable) -> bool:
        return variable.end - variable.start == 1 and self.segments[variable.start] == "*"

    def match(self, parts: list[str], verb: str) -> dict[tuple[str, ...], str] | None:
        if verb != self.verb:
            return None
        spans: list[tuple[int, int]] = [(0, 0)] * len(self.segments)
        if not self._match(0, parts, 0, spans):
            return None
        bound = {}
        for variable in self.variables:
            start = spans[variable.start][0] if variable.end > variable.start else 0
            end = spans[variable.end - 1][1] if variable.end > variable.start else 0
            raw = parts[start:end]
            if self.single(variable):
                bound[variable.field_path] = unquote(raw[0])
            else:
                bound[variable.field_path] = "/".join(_unescape_except_reserved(p) for p in raw)
        return bound

    def _match(self, i: int, parts: list[str], j: int, spans: list[tuple[int, int]]) -> bool:
        if i == len(self.segments):
            return j == len(parts)
        segment = self.segments[i]
        if segment == "**":
            # Greedy last-first; only literals may follow `**`, so this backtracks little.
            for end in range(len(parts), j - 1, -1):
                spans[i] = (j, end)
                if self._match(i + 1, parts, end, spans):
                    return True
            return False
        if j >= len(parts):
            return False
        if segment == "*" or segment == parts[j]:
            spans[i] = (j, j + 1)
            return self._match(i + 1, parts, j + 1, spans)
        return False


def _unescape_except_reserved(part: str) -> str:
    def decode(match: re.Match) -> str:
        char = chr(int(match.group(0)[1:], 16))
        return match.group(0) if char in _RESERVED else char

    return _PCT.sub(decode, part)


def parse(template: str) -> Template:
    if not template.startswith("/"):
        raise TemplateError(f"template {template!r} must start with /")
    body, verb = template[1:], ""
    # A verb follows the last `:` that is outside any `{...}`.
    depth = 0
    for index in range(len(body) - 1, -1, -1):
        char = body[index]
        if char == "}":
            depth += 1
        elif char == "{":
            depth -= 1
        elif char == ":" and depth == 0:
            body, verb = body[:index], body[index + 1 :]
            break
    segments: list[str] = []
    variables: list[Variable] = []
    for token in _split_top_level(body):
        if token.startswith("{"):
            if not token.endswith("}"):
                raise TemplateError(f"unclosed variable in {template!r}")
            inner = token[1:-1]
            field, _, pattern = inner.partition("=")
            sub = pattern.split("/") if pattern else ["*"]
            start = len(segments)
            segments.extend(sub)
            variables.append(Variable(tuple(field.split(".")), start, len(segments)))
        else:
            segments.append(token)
    if "**" in segments and any(s in ("*", "**") for s in segments[segments.index("**") + 1 :]):
        raise TemplateError(f"only literals may follow ** in {template!r}")
    return Template(segments, variables, verb)


def _split_top_level(body: str) -> list[str]:
    tokens, current, depth = [], "", 0
    for char in body:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        if char == "/" and depth == 0:
            tokens.append(current)
            current = ""
        else:
            current += char
    tokens.append(current)
    return tokens
