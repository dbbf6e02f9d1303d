"""Tiny bencode encoder/decoder and .torrent maker for the bittap lab (BEP 3, v1 torrents only)."""
import hashlib
import os


def bencode(x):
    if isinstance(x, bool):
        x = int(x)
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, (bytes, bytearray)):
        return b"%d:%s" % (len(x), bytes(x))
    if isinstance(x, (list, tuple)):
        return b"l" + b"".join(bencode(i) for i in x) + b"e"
    if isinstance(x, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in x.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(type(x))


def bdecode(data, i=0):
    """Return (value, next_index)."""
    c = data[i:i + 1]
    if c == b"i":
        j = data.index(b"e", i)
        return int(data[i + 1:j]), j + 1
    if c == b"l":
        i += 1
        out = []
        while data[i:i + 1] != b"e":
            v, i = bdecode(data, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        i += 1
        out = {}
        while data[i:i + 1] != b"e":
            k, i = bdecode(data, i)
            v, i = bdecode(data, i)
            out[k] = v
        return out, i + 1
    j = data.index(b":", i)
    n = int(data[i:j])
    return data[j + 1:j + 1 + n], j + 1 + n


def make_content(path, size, seed):
    """Deterministic pseudo-random content of `size` bytes."""
    import random
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 16)
            f.write(rnd.randbytes(n))
            left -= n


def make_torrent(content_path, torrent_path, announce=None, piece_len=16384, announce_list=None,
                 private=False, url_list=None):
    """Write a single-file v1 .torrent; return the info-hash as hex."""
    pieces = []
    with open(content_path, "rb") as f:
        while True:
            b = f.read(piece_len)
            if not b:
                break
            pieces.append(hashlib.sha1(b).digest())
    info = {
        "name": os.path.basename(content_path),
        "length": os.path.getsize(content_path),
        "piece length": piece_len,
        "pieces": b"".join(pieces),
    }
    if private:
        info["private"] = 1
    meta = {"info": info, "created by": "bittap-lab", "creation date": 1700000000}
    if announce:
        meta["announce"] = announce
    if announce_list:
        meta["announce-list"] = [[u] for u in announce_list]
    if url_list:
        meta["url-list"] = list(url_list)  # BEP 19 web seeds
    with open(torrent_path, "wb") as f:
        f.write(bencode(meta))
    return hashlib.sha1(bencode(info)).hexdigest()


def magnet(infohash_hex, name=None):
    m = "magnet:?xt=urn:btih:" + infohash_hex
    if name:
        m += "&dn=" + name
    return m
