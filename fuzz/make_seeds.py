#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (corpus/NAME/seed-*) from the inputs of
the unit tests they fuzz. Run from fuzz/: python3 make_seeds.py"""
import os
import struct


def put(target, name, data):
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# rules_line: ucspi/src/rules.rs tests, one file per test, plus a whole file.
djb = [
    b'10.0.0.1:allow,A="1",B=\'x y\'\n', b"1.2.3.4:deny", b":allow\n", b"=:deny,X=//\n",
    b"# comment\n", b"no colon here\n", b"1.2.3.4:allow  \t \n", b" 1.2.3.4:allow\n",
    b"x:allow,X=+a:b,c+\n", b"joe@=h.example:allow\n",
]
ranges = [b"1.2.3.50-52:allow\n", b"1.2.254-300.:deny\n", b"1.2.3.9-5:allow\n",
          b"-1:allow\n", b"1.2.3.a-5:allow\n", b"=a-b:allow\n"]
errors = [b"1.2.3.4:allowx", b"1.2.3.4:permit", b"1.2.3.4:allow,X", b"1.2.3.4:allow,X=",
          b'1.2.3.4:allow,X="a', b"1:2:allow"]
ext = [b"1.2.3.4:allow\r\n", b'::1:allow,X="a:b"\n', b"joe@2001:db8::1:deny\n",
       b"10.0.0.0/8:deny\n", b"a000::/4:deny\n", b"2001:db8::allow\n",
       b"10.0.0.0/33:deny", b"10.0.0/8:deny", b"::1/0:deny", b"zz::1:deny"]
for name, lines in [("djb", djb), ("ranges", ranges), ("extensions", ext)]:
    put("rules_line", name, b"".join(l if l.endswith(b"\n") else l + b"\n" for l in lines))
for i, l in enumerate(errors):
    put("rules_line", "error-%d" % i, l)


def cdb_hash(k):
    h = 5381
    for c in k:
        h = (((h << 5) + h) & 0xFFFFFFFF) ^ c
    return h


def cdb_make(records):
    out = bytearray(2048)
    tables = [[] for _ in range(256)]
    for k, d in records:
        h = cdb_hash(k)
        tables[h & 255].append((h, len(out)))
        out += struct.pack("<II", len(k), len(d)) + k + d
    for i, lst in enumerate(tables):
        slots = len(lst) * 2
        out[i * 8:i * 8 + 8] = struct.pack("<II", len(out), slots)
        t = [(0, 0)] * slots
        for h, p in lst:
            w = (h >> 8) % slots
            while t[w][1] != 0:
                w = (w + 1) % slots
            t[w] = (h, p)
        for h, p in t:
            out += struct.pack("<II", h, p)
    return bytes(out)


# cdb_lookup: cdbs of the rules above (keys as tcprules writes them), each behind a
# header [ip selector, host length, info length] + texts.
recs = [
    (b"10.0.0.1", b"+A=1\x00+B=x y\x00"), (b"1.2.3.4", b"D\x00"), (b"", b""),
    (b"=", b"D\x00+X=\x00"), (b"joe@=h.example", b""), (b"=.example", b"+X=1\x00"),
    (b"10.", b"+P=1\x00"), (b"_0000e0g0", b"D\x00"), (b"^`0a0", b"D\x00"),
    (b"0000:0000:0000:0000:0000:0000:0000:0001", b"+X=a:b\x00"),
    (b"joe@2001:0DB8:0000:0000:0000:0000:0000:0001", b"D\x00"), (b"2001:db8:", b""),
    (b"192.168.", b"D\x00"), (b"127.0.0.1", b"+TCPREMOTEHOST=x\x00"),
]
db = cdb_make(recs)
put("cdb_lookup", "v4-host-info", bytes([1, 9, 3]) + b"h.example" + b"joe" + db)
put("cdb_lookup", "v6-info", bytes([4, 0xFF, 3]) + b"joe" + db)
put("cdb_lookup", "v6-loopback", bytes([3, 0xFF, 0xFF]) + db)
put("cdb_lookup", "own-ip", bytes([0x80 | 8, 5, 0xFF]) + b"1.2.3.4" + b"x" + b"a.b.c" + db)
put("cdb_lookup", "empty-cdb", bytes([0, 0xFF, 0xFF]) + bytes(2048))
put("cdb_lookup", "dup", bytes([1, 0xFF, 0xFF]) + cdb_make([(b"10.1.2.3", b"1"), (b"10.1.2.3", b"2")]))

# dns_reply: ucspi/src/dns.rs tests' packets.
T_A, T_PTR, T_TXT, T_AAAA, T_CNAME = 1, 12, 16, 28, 5
r = bytearray([0, 1, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0]) + b"\x01x\x00\x00\x10\x00\x01"
for t, data in [(T_TXT, b"\x03abc\x02de"), (T_A, b"\x7f\x00\x00\x02"), (T_TXT, b"\x01f")]:
    r += bytes([0xC0, 12]) + struct.pack(">H", t) + bytes([0, 1, 0, 0, 0, 9])
    r += struct.pack(">H", len(data)) + data
put("dns_reply", "txt", bytes(r))
q = b"\x014\x013\x012\x011\x07in-addr\x04arpa\x00"
p = bytearray([0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0]) + q + bytes([0, 12, 0, 1])
p += bytes([0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 1, 0, 2, 0xC0, 12])
p += bytes([0xC0, 12, 0, 12, 0, 1, 0, 0, 0, 1, 0, 6]) + b"\x03Foo\xc0\x10"
put("dns_reply", "ptr-compressed", bytes(p))
put("dns_reply", "pointer-loop", b"\xc0\x00")
a = bytearray([0, 2, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0]) + b"\x03www\x07example\x00\x00\x01\x00\x01"
a += bytes([0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 9, 0, 4, 192, 0, 2, 1])
a += bytes([0xC0, 12, 0, 28, 0, 1, 0, 0, 0, 9, 0, 16]) + bytes(15) + b"\x01"
put("dns_reply", "a-aaaa", bytes(a))
put("dns_reply", "presentation", b"a\\040b.c.")

# ident_reply: ucspi/src/ident.rs tests' lines.
for i, l in enumerate([b"123 , 456 : USERID : UNIX : joe\r\n", b"1,2:ERROR:NO-USER\r\n",
                       b"1,2:USERID:UNIX:a b:c\n", b"no newline",
                       b"1,2:U:X:" + b"x" * 1000]):
    put("ident_reply", "line-%d" % i, l)


# mysql_packets: a server's side of a session, in the shapes of the store's tests.
def my_packets(payloads, seq=0):
    out = b""
    for p in payloads:
        out += struct.pack("<I", len(p))[:3] + bytes([seq & 255]) + p
        seq += 1
    return out


def lenenc(b):
    return bytes([len(b)]) + b


def my_greeting(version, plugin=b"mysql_native_password"):
    caps = 0x0200 | 0x8000 | 0x0008 | 0x0001 | 0x0004 | 0x2000  # 4.1, secure, db, ...
    caps_hi = 0x0008 | 0x0020 | 0x0002  # plugin auth, lenenc, multi results
    return (b"\x0a" + version + b"\x00" + struct.pack("<I", 7) + b"abcdefgh" + b"\x00"
            + struct.pack("<H", caps) + b"\x21" + struct.pack("<H", 2)
            + struct.pack("<H", caps_hi) + bytes([21]) + bytes(10) + b"ijklmnopqrst\x00"
            + plugin + b"\x00")


def my_column(name, typ=0xFD):
    return (lenenc(b"def") + lenenc(b"vpopmail") + lenenc(b"vpopmail")
            + lenenc(b"vpopmail") + lenenc(name) + lenenc(name) + b"\x0c"
            + struct.pack("<HIBHB", 33, 255, typ, 0, 0) + b"\x00\x00")


OK = b"\x00\x00\x00\x02\x00\x00\x00"
EOF_ = b"\xfe\x00\x00\x02\x00"
ERR = b"\xff\x15\x04#28000Access denied for user"
text_result = [b"\x01", my_column(b"pw_name"), EOF_, lenenc(b"alice"), lenenc(b"bob"), EOF_]
prep_ok = b"\x00" + struct.pack("<IHH", 1, 2, 2) + b"\x00\x00\x00"
binary_result = [b"\x02", my_column(b"pw_name"), my_column(b"pw_uid", 3), EOF_,
                 b"\x00\x00" + lenenc(b"alice") + struct.pack("<i", 7),
                 b"\x00\x08" + lenenc(b"bob"), EOF_]
for name, ver in [("mysql8", b"8.0.36"), ("mariadb", b"10.11.6-MariaDB-0+deb12u1")]:
    put("mysql_packets", name + "-text",
        my_packets([my_greeting(ver)]) + my_packets([OK], 2) + my_packets(text_result, 1))
    put("mysql_packets", name + "-prepared",
        my_packets([my_greeting(ver)]) + my_packets([OK], 2) + my_packets(text_result, 1)
        + my_packets([prep_ok, my_column(b"?"), my_column(b"?"), EOF_, my_column(b"pw_name"),
                      my_column(b"pw_uid", 3), EOF_], 1) + my_packets(binary_result, 1))
put("mysql_packets", "auth-switch",
    my_packets([my_greeting(b"8.0.36", b"caching_sha2_password")])
    + my_packets([b"\xfemysql_native_password\x00abcdefghijklmnopqrst\x00"], 2)
    + my_packets([OK], 4))
put("mysql_packets", "caching-sha2-fast",
    my_packets([my_greeting(b"8.0.36", b"caching_sha2_password")])
    + my_packets([b"\x01\x03", OK], 2))
put("mysql_packets", "denied", my_packets([my_greeting(b"8.0.36")]) + my_packets([ERR], 2))
put("mysql_packets", "error-greeting", my_packets([b"\xff\x10\x04Too many connections"]))
put("mysql_packets", "huge-header", bytes([0xFF, 0xFF, 0xFF, 0, 10]))


# postgres_messages: backend messages.
def pg(t, body):
    return t + struct.pack(">I", len(body) + 4) + body


ready = pg(b"Z", b"I")
hello = (pg(b"S", b"server_version\x0016.4\x00") + pg(b"S", b"client_encoding\x00UTF8\x00")
         + pg(b"K", struct.pack(">II", 42, 4242)) + ready)
rowdesc = pg(b"T", struct.pack(">H", 2)
             + b"pw_name\x00" + struct.pack(">IHIhih", 0, 0, 25, -1, -1, 0)
             + b"pw_uid\x00" + struct.pack(">IHIhih", 0, 0, 23, 4, -1, 0))
def datarow(*vals):
    b = struct.pack(">H", len(vals))
    for v in vals:
        b += struct.pack(">i", -1) if v is None else struct.pack(">I", len(v)) + v
    return pg(b"D", b)
answer = (pg(b"1", b"") + pg(b"2", b"") + rowdesc + datarow(b"alice", b"7")
          + datarow(b"bob", None) + pg(b"C", b"SELECT 2\x00") + ready)
simple = rowdesc + datarow(b"alice", b"7") + pg(b"C", b"SELECT 1\x00") + ready
put("postgres_messages", "trust", pg(b"R", struct.pack(">I", 0)) + hello + answer + answer)
put("postgres_messages", "trust-simple", pg(b"R", struct.pack(">I", 0)) + hello + simple + answer)
put("postgres_messages", "cleartext", pg(b"R", struct.pack(">I", 3)) + pg(b"R", struct.pack(">I", 0)) + hello + answer)
put("postgres_messages", "md5", pg(b"R", struct.pack(">I", 5) + b"salt") + pg(b"R", struct.pack(">I", 0)) + hello)
put("postgres_messages", "scram-first",
    pg(b"R", struct.pack(">I", 10) + b"SCRAM-SHA-256\x00\x00")
    + pg(b"R", struct.pack(">I", 11) + b"r=abcdefghijklmnopqrstuvwxyz012345,s=c2FsdA==,i=4096")
    + pg(b"R", struct.pack(">I", 12) + b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))
put("postgres_messages", "error",
    pg(b"E", b"SFATAL\x00VFATAL\x00C28P01\x00Mpassword authentication failed\x00\x00"))
put("postgres_messages", "notice-then-error",
    pg(b"R", struct.pack(">I", 0)) + pg(b"N", b"SWARNING\x00Mhello\x00\x00") + hello
    + pg(b"E", b"SERROR\x00C42P01\x00Mno such table\x00\x00") + ready + answer)

# phc: vpopdb/src/phc.rs tests (Debian's argon2 CLI strings, and the refused ones).
phc = [
    b"$argon2id$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo",
    b"$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$IMit9qkFULCMA/ViizL57cnTLOa5DiVM9eMwpAvPwr4",
    b"$argon2id$v=16$m=64,t=1,p=1$c29tZXNhbHQ$BNNN5hUxEQkUk67iF/12o/X1a4Jvvi9IzrjXfdGe2so",
    b"$argon2i$v=19$m=4096,t=3,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A",
    b"$argon2i$m=4096,t=3,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A",
    b"$argon2d$v=19$m=64,t=1,p=1$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo",
    b"$argon2id$v=19$m=64,t=1,p=1$c29t$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo",
    b"$argon2id$v=19$m=262145,t=1,p=1$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo",
    b"$argon2id$v=19$m=262144,t=5,p=17$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo$",
]
for i, h in enumerate(phc):
    put("phc", "%d" % i, h)

# limits_file: vpopdb/src/limits.rs tests.
put("limits_file", "vpopmail",
    b"maxpopaccounts: 10\r\n# disable_imap\ndisable_pop\ndisable_external_relay\n"
    b"quota: 5000\ndefault_maxmsgcount\t-3x\nnonsense 7\n\ndisable_smtp: 0\n")
put("limits_file", "column-name", b"disable_relay")
put("limits_file", "numbers",
    b"maxaliases 99999999999999999999999\nmaxforwards:-5\nperm_account: 7\n"
    b"disable_passwordchanging\ndelete_spam\n")

# scram: the server-first message (RFC 7677's, with the fuzz target's nonce), a NUL, the
# server-final message; the first byte's low bit asks for the right server-final.
first = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=%d"
put("scram", "right", b"\x01" + first % 4 + b"\x00")
put("scram", "wrong", b"\x00" + first % 4 + b"\x00v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
put("scram", "iterations-0", b"\x00" + first % 0 + b"\x00v=")
put("scram", "iterations-huge", b"\x00" + first % 1000001 + b"\x00v=")
put("scram", "other-nonce", b"\x00r=abc,s=QSXCR+Q6sek8bf92,i=1\x00v=")
put("scram", "error", b"\x00" + first % 1 + b"\x00e=invalid-proof")

# settings: vpopdb/src/config.rs and target.rs tests.
put("settings", "config",
    b"# c\n db = sqlite:/x \nlockout_failures=5\ntables = per-domain\n")
put("settings", "config-mysql",
    b"db = mysql://vpopmail:s3cretpw@127.0.0.1:3307/vpop?socket=/run/my.sock&ssl-mode=REQUIRED\n"
    b"relay = on\nrelay_minutes = 180\ntrusted_uids = 0, 8\ndb_sslmode = verify-full\n")
put("settings", "config-postgres",
    b"db = postgres://u%40x:p%3Aword@db.example:6543/mail?sslmode=disable&password=another1\n"
    b"default_domain = example.org\nlogin_timeout = 30\nclear_passwords = off\n")
for i, u in enumerate([
        b"mysql://u:p%40ss@127.0.0.1:3307/vpop?socket=/run/my.sock",
        b"postgresql://cp@localhost/cp?host=/run/pg&port=5433",
        b"postgres://cp@[::1]:5999", b"mysql://u@[::1]:3307/d", b"mysql://u@h:x/d",
        b"postgres://cp@h/d?sslmode=sometimes", b"mysql://u@h/d?ssl-key=/k",
        b"mysql://u:hunter22@h/d?password=hunter33", b"sqlite:/a/b"]):
    put("settings", "url-%d" % i, u)
put("settings", "vpopmail-mysql", b"db|3306|r|readpass|v\ndb|3306|w|writepass|v\n")
put("settings", "vpopmail-mysql-socket", b"localhost|0|vpopmail|secretpw|vpopmail\n")

# relay_rules: vpopdb/src/relay.rs tests' rows, NUL-separated.
put("relay_rules", "rows",
    b"10.0.0.2\x0010.0.0.10\x00::ffff:10.0.0.2\x002001:db8::7\x0010.9.9.9\x00junk;")
put("relay_rules", "injection", b"10.0.0.1\n1.2.3.4:allow\x00 10.0.0.3 \x00::1\x00fe80::1%eth0")
