"""Reads R lazy-load databases (`Rdata.rdx` + `Rdata.rdb`, as in Debian's r-cran-* data
packages) without R: the subset of R's XDR serialization that holds character, integer, real
and list vectors. `python3 scripts/rdata.py PREFIX` lists the objects."""
import struct, sys, zlib, bz2, lzma

class R:
    """A reader for the subset of R's XDR serialization the janeaustenr data uses."""
    def __init__(self, b):
        self.b, self.i, self.refs = b, 0, []
    def int(self):
        v = struct.unpack_from('>i', self.b, self.i)[0]; self.i += 4; return v
    def bytes(self, n):
        v = self.b[self.i:self.i + n]; self.i += n; return v
    def top(self):
        assert self.bytes(2) == b'X\n', 'not XDR serialization'
        ver = self.int(); self.int(); self.int()
        if ver == 3:
            self.bytes(self.int())
        return self.item()
    def item(self):
        flags = self.int()
        t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if t == 254: return None
        if t in (253, 252, 251, 250, 242, 241): return None
        if t == 255:
            idx = flags >> 8
            return self.refs[(idx if idx else self.int()) - 1]
        if t == 1:
            s = self.item(); self.refs.append(s); return s
        if t == 9:
            n = self.int(); return None if n == -1 else self.bytes(n).decode('utf-8', 'replace')
        if t in (2, 239, 6, 240):
            attr = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            car = self.item(); cdr = self.item()
            out = [(tag, car)]
            if isinstance(cdr, list): out += cdr
            return out
        if t in (10, 13):
            n = self.int(); v = list(struct.unpack_from('>%di' % n, self.b, self.i)); self.i += 4 * n
        elif t == 14:
            n = self.int(); v = list(struct.unpack_from('>%dd' % n, self.b, self.i)); self.i += 8 * n
        elif t in (16, 19, 20):
            n = self.int(); v = [self.item() for _ in range(n)]
        else:
            raise ValueError('unsupported R type %d' % t)
        if has_attr:
            attrs = dict(self.item())
            if 'names' in attrs and t in (19, 20, 13):
                return dict(zip(attrs['names'], v))
        return v

def unpack(blob, kind):
    n = struct.unpack_from('>i', blob)[0]
    if kind == 2:
        c, rest = blob[4:5], blob[5:]
        data = {b'Z': zlib.decompress, b'2': bz2.decompress, b'X': lzma.decompress, b'0': bytes}[c](rest)
    else:
        data = zlib.decompress(blob[4:])
    assert len(data) == n, 'length mismatch'
    return data

def load(prefix):
    import gzip
    rdx = R(gzip.decompress(open(prefix + '.rdx', 'rb').read())).top()
    kind = rdx['compressed'][0] if isinstance(rdx['compressed'], list) else 1
    db = open(prefix + '.rdb', 'rb').read()
    out = {}
    for name, (off, ln) in rdx['variables'].items():
        out[name] = R(unpack(db[off:off + ln], kind)).top()
    return out

if __name__ == '__main__':
    d = load(sys.argv[1])
    for k, v in d.items():
        print(k, type(v).__name__, len(v) if hasattr(v, '__len__') else v, repr(v[:3]) if isinstance(v, list) else '')
