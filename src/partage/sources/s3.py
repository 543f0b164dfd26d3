"""Partner drops on S3-compatible object storage: ``file: s3://bucket/prefix/*.csv``.

Needs the optional extra ``partage[s3]`` (s3fs). Credentials and endpoint come
from the environment, as for every AWS client (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL for a non-AWS store such as MinIO or
Garage), never from the catalog. Each object matching the glob is a resource;
an unchanged object costs one HEAD (its ETag is compared) and no body.
"""

from __future__ import annotations

import os
from typing import Any

from ..catalog import CatalogEntry, Source
from ..rawstore import RawStore
from ..store.warehouse import SourceRecord
from . import Acquired, SourceResource, source_key

INSTALL_HINT = "S3 sources need the optional extra: pip install 'partage[s3]' (s3fs)"


def _fs() -> Any:
    import s3fs

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint} if endpoint else {},
                             skip_instance_cache=True, use_listings_cache=False)


def resources(entry: CatalogEntry, src: Source, max_bytes: int | None) -> tuple[list[SourceResource], Acquired | None]:
    assert src.file is not None
    pattern = src.file
    me = SourceResource(entry.id, source_key("s3", pattern), "s3", pattern, pattern)
    try:
        fs = _fs()
        found = fs.glob(pattern[len("s3://"):], detail=True)
    except ImportError:
        return [], Acquired(me, "failed", f"{pattern}: {INSTALL_HINT}")
    except Exception as e:  # botocore raises many kinds; each is this source's failure only
        return [], Acquired(me, "failed", f"{pattern}: cannot list the bucket ({type(e).__name__}: {e}); "
                                          "check AWS_ENDPOINT_URL and the credentials in the environment")
    out = []
    for path, info in sorted(found.items()):
        name = path.rsplit("/", 1)[-1]
        if info.get("type") != "file" or name.startswith(".") or not name:
            continue
        url = f"s3://{path}"
        out.append(SourceResource(entry.id, source_key("s3", url), "s3", url, url, None, max_bytes,
                                  remote_size=info.get("size"), canonical=url))
    if out:
        return out, None
    return [], Acquired(me, "failed", f"no object matches {pattern!r}; check the bucket, the prefix or the partner's drop")


def acquire(res: SourceResource, record: SourceRecord | None, raw: RawStore) -> Acquired:
    try:
        fs = _fs()
        info = fs.info(res.location[len("s3://"):])
    except ImportError:
        return Acquired(res, "failed", f"{res.label}: {INSTALL_HINT}")
    except FileNotFoundError:
        return Acquired(res, "failed", f"{res.label}: the object is not there any more; check the partner's drop")
    except Exception as e:
        return Acquired(res, "failed", f"{res.label}: cannot read ({type(e).__name__}: {e}); check the credentials",
                        transient=True)
    etag, size = info.get("ETag"), int(info.get("size") or 0)
    if record is not None and etag and record.etag == etag and raw.has(record.sha256):
        return Acquired(res, "unchanged", f"same ETag {etag} as last harvest; not downloaded", "etag",
                        record.sha256, record.bytes, 0, etag, record.last_modified)
    if res.max_bytes is not None and size > res.max_bytes:
        return Acquired(res, "failed", f"{res.label} is {size:,} bytes, over the limit of {res.max_bytes:,}; raise max_bytes if expected")
    with fs.open(res.location[len("s3://"):], "rb") as f, raw.writer(res.label, res.max_bytes) as sink:
        while chunk := f.read(1 << 16):
            sink.write(chunk)
    stamp = str(info.get("LastModified") or "")
    if record is not None and sink.sha256 == record.sha256:
        return Acquired(res, "unchanged", f"new ETag but same content (sha256 {sink.sha256[:12]}…)", "sha256",
                        sink.sha256, sink.bytes, sink.bytes, etag, stamp)
    return Acquired(res, "changed", f"read {sink.bytes:,} bytes", "sha256", sink.sha256, sink.bytes, sink.bytes, etag, stamp)
