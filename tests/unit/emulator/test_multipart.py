"""The streaming multipart parser, fed in tiny chunks so boundaries straddle reads."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from daemon.emulator.multipart import MultipartError, boundary_of, parse_multipart

BOUNDARY = "abc123"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def form_body(file_bytes: bytes, filename: str = "in.jsonl") -> bytes:
    return (
        (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="purpose"\r\n\r\n'
            "batch\r\n"
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="expires_after[seconds]"\r\n\r\n'
            "3600\r\n"
            f"--{BOUNDARY}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/jsonl\r\n\r\n"
        ).encode()
        + file_bytes
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 64 * 1024])
def test_fields_and_file_across_chunk_sizes(tmp_path: Path, chunk_size: int) -> None:
    # The payload contains near-boundaries to make sure only the real delimiter ends the part.
    payload = b'{"a": 1}\r\n--abc12\r\n--abc1X3 is not it\n' * 50
    dest = tmp_path / "upload.part"
    form = parse_multipart(io.BytesIO(form_body(payload)).read, CONTENT_TYPE, dest, chunk_size=chunk_size)
    assert form.fields == {"purpose": "batch", "expires_after[seconds]": "3600"}
    assert form.filename == "in.jsonl"
    assert form.file_size == len(payload)
    assert dest.read_bytes() == payload


def test_escaped_and_unicode_filenames(tmp_path: Path) -> None:
    body = form_body(b"x", filename="caf\u00e9 %22quoted%22.jsonl")
    form = parse_multipart(io.BytesIO(body).read, CONTENT_TYPE, tmp_path / "f")
    assert form.filename == 'caf\u00e9 "quoted".jsonl'


def test_truncated_body_is_an_error(tmp_path: Path) -> None:
    body = form_body(b"data")[:-20]
    with pytest.raises(MultipartError):
        parse_multipart(io.BytesIO(body).read, CONTENT_TYPE, tmp_path / "f")


@pytest.mark.parametrize("content_type", ["application/json", "multipart/form-data"])
def test_content_type_must_carry_a_boundary(content_type: str) -> None:
    with pytest.raises(MultipartError):
        boundary_of(content_type)


def test_quoted_boundary() -> None:
    assert boundary_of('multipart/form-data; boundary="a b"') == b"a b"
