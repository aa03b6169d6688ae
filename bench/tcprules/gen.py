#!/usr/bin/env python3
"""Writes a rules file of N lines to stdout, the kind a large site keeps: exact addresses
with settings, class prefixes, small ranges, host names, ident rules, comments,
duplicates. Deterministic for a given N."""
import random
import sys

n = int(sys.argv[1])
r = random.Random(n)
out = sys.stdout
w = out.write
for i in range(n):
    k = r.randrange(100)
    a, b, c, d = r.randrange(256), r.randrange(256), r.randrange(256), r.randrange(256)
    if k < 50:
        w(f'{a}.{b}.{c}.{d}:allow,RELAYCLIENT="",NOTE="{i}"\n')
    elif k < 60:
        w(f'{a}.{b}.{c}.{d}:deny\n')
    elif k < 70:
        w(f'{a}.{b}.{c}.:allow,RBLSMTPD="",QMAILQUEUE="/var/qmail/bin/qq{i % 7}"\n')
    elif k < 75:
        lo = r.randrange(250)
        w(f'{a}.{b}.{c}.{lo}-{lo + r.randrange(1, 6)}:allow,RANGE="{i}"\n')
    elif k < 85:
        w(f'=host{i}.example{r.randrange(50)}.com:allow,HOST="y"\n')
    elif k < 90:
        w(f'=.domain{i}.net:deny\n')
    elif k < 95:
        w(f'user{r.randrange(100)}@{a}.{b}.{c}.{d}:allow,USER="u"\n')
    elif k < 97:
        w(f'# comment line {i}\n')
    else:
        w('127.0.0.1:allow,RELAYCLIENT=""\n')
