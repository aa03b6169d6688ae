//! mod_ssl's certificate variables (`SSL_SERVER_*`, `SSL_CLIENT_*`) as ucspi-ssl's
//! sslserver and sslclient set them for one X.509 certificate.
//!
//! Programs behind those tools compare these strings literally (a DN in an access list, a
//! serial in a revocation table), so every value is the text OpenSSL's own routine
//! gives: `X509_NAME_oneline` for the DNs, `BN_bn2dec` for the serial, `OBJ_nid2ln` for
//! the algorithms, `ASN1_TIME_print` for the dates.
//!
//! x509-parser checks the certificate and gives the version, serial, algorithms and
//! alternative names. The two names and the validity times are read again from the DER
//! of the TBSCertificate: x509-parser stops reading a name at an empty RDN and drops the
//! rest without an error, where OpenSSL prints the rest; and OpenSSL prints some of what a
//! time encodes (a fraction of a second) that x509-parser's dates do not keep.
//!
//! Every value is worked out before the first variable is pushed, so a certificate that
//! fails part-way leaves no half set behind.

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// Whose certificate: the prefix "SSL_SERVER_" or "SSL_CLIENT_".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

impl Side {
    /// The prefix of every variable name of this side.
    pub fn prefix(self) -> &'static str {
        match self {
            Side::Server => "SSL_SERVER_",
            Side::Client => "SSL_CLIENT_",
        }
    }
}

/// A certificate that could not be parsed.
#[derive(Debug)]
pub struct BadCertificate;

impl fmt::Display for BadCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("certificate could not be parsed")
    }
}

impl std::error::Error for BadCertificate {}

/// Calls `push(name, value)` for each variable of certificate `der`, in this order:
/// `M_VERSION`, `M_SERIAL`, `S_DN`, the `S_DN_*` parts, `I_DN`, the `I_DN_*` parts,
/// `A_SIG`, `A_KEY`, the `SAN_*_n` names, `V_START`, `V_END`, `CERT`. A DN part that
/// occurs more than once is pushed once for each, in certificate order, so that in an
/// environment the last one stands.
pub fn cert_vars(
    side: Side,
    der: &[u8],
    push: &mut dyn FnMut(&str, &[u8]),
) -> Result<(), BadCertificate> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|_| BadCertificate)?;
    // One certificate is asked for; bytes after it mean the caller handed something else.
    if !rest.is_empty() {
        return Err(BadCertificate);
    }
    let tbs = &cert.tbs_certificate;
    let version = (u64::from(tbs.version.0) + 1).to_string();
    let serial = bn2dec(tbs.raw_serial()).ok_or(BadCertificate)?;
    let raw = TbsParts::read(tbs.as_ref()).ok_or(BadCertificate)?;
    let subject = Dn::read(&raw.subject).ok_or(BadCertificate)?;
    let issuer = Dn::read(&raw.issuer).ok_or(BadCertificate)?;
    let sig = oid_text(cert.signature_algorithm.algorithm.as_bytes()).ok_or(BadCertificate)?;
    let key = oid_text(tbs.subject_pki.algorithm.algorithm.as_bytes()).ok_or(BadCertificate)?;
    let sans = san_vars(&cert);
    let start = time_print(&raw.not_before);
    let end = time_print(&raw.not_after);

    let mut name = String::with_capacity(40);
    let mut put = |suffix: &str, value: &[u8]| {
        name.clear();
        name.push_str(side.prefix());
        name.push_str(suffix);
        push(&name, value);
    };
    put("M_VERSION", version.as_bytes());
    put("M_SERIAL", serial.as_bytes());
    subject.put("S_DN", &mut put);
    issuer.put("I_DN", &mut put);
    put("A_SIG", long_name(&sig).unwrap_or("UNKNOWN").as_bytes());
    put("A_KEY", long_name(&key).unwrap_or("UNKNOWN").as_bytes());
    for (suffix, value) in &sans {
        put(suffix, value);
    }
    put("V_START", start.as_bytes());
    put("V_END", end.as_bytes());
    put("CERT", &pem(der));
    Ok(())
}

/// `SSL_<SIDE>_CERT_CHAIN_<n>` = PEM of chain[n], n from 0 (the certificates after the end entity).
pub fn chain_vars(side: Side, chain: &[&[u8]], push: &mut dyn FnMut(&str, &[u8])) {
    for (n, der) in chain.iter().enumerate() {
        let name = format!("{}CERT_CHAIN_{n}", side.prefix());
        push(&name, &pem(der));
    }
}

/// PEM armor of a DER certificate: "-----BEGIN CERTIFICATE-----\n", base64 in lines of 64,
/// "-----END CERTIFICATE-----\n" (exactly as `openssl x509` prints it, trailing newline
/// included).
pub fn pem(der: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----\n";
    const END: &[u8] = b"-----END CERTIFICATE-----\n";
    let mut out = Vec::with_capacity(BEGIN.len() + END.len() + der.len() / 48 * 65 + 66);
    out.extend_from_slice(BEGIN);
    // Forty-eight bytes make exactly one line of sixty-four characters.
    for line in der.chunks(48) {
        for group in line.chunks(3) {
            let b0 = group.first().copied().unwrap_or(0);
            let b1 = group.get(1).copied().unwrap_or(0);
            let b2 = group.get(2).copied().unwrap_or(0);
            let n = u32::from(b0) << 16 | u32::from(b1) << 8 | u32::from(b2);
            let sextet = |shift: u32| ALPHABET[(n >> shift & 63) as usize];
            out.push(sextet(18));
            out.push(sextet(12));
            out.push(if group.len() > 1 { sextet(6) } else { b'=' });
            out.push(if group.len() > 2 { sextet(0) } else { b'=' });
        }
        out.push(b'\n');
    }
    out.extend_from_slice(END);
    out
}

/// The parts of a DN that get variables of their own, in the order they are pushed:
/// the variable suffix and the attribute type.
const DN_PARTS: &[(&str, &str)] = &[
    ("C", "2.5.4.6"),
    ("ST", "2.5.4.8"),
    ("L", "2.5.4.7"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("CN", "2.5.4.3"),
    ("T", "2.5.4.12"),
    ("I", "2.5.4.43"),
    ("G", "2.5.4.42"),
    ("S", "2.5.4.4"),
    ("D", "2.5.4.13"),
    ("UID", "2.5.4.45"),
    ("Email", "1.2.840.113549.1.9.1"),
];

/// A subject or issuer: its one-line form and its attributes with their types as text.
struct Dn<'a> {
    oneline: Vec<u8>,
    attributes: Vec<(String, Cow<'a, [u8]>)>,
}

impl<'a> Dn<'a> {
    /// A Name: a SEQUENCE of RDNs, each a SET of SEQUENCEs of a type and a value.
    fn read(name: &Tlv<'a>) -> Option<Self> {
        if name.tag != 0x30 {
            return None;
        }
        let mut oneline = Vec::with_capacity(name.content.len() + 16);
        let mut attributes = Vec::new();
        let mut rdns = name.content;
        while !rdns.is_empty() {
            let (rdn, rest) = read_tlv(rdns)?;
            rdns = rest;
            if rdn.tag != 0x31 {
                return None;
            }
            let mut atvs = rdn.content;
            // A further member of a multi-valued RDN is joined with '+'.
            let mut separator = b'/';
            while !atvs.is_empty() {
                let (atv, rest) = read_tlv(atvs)?;
                atvs = rest;
                let (kind, rest) = read_tlv(atv.content)?;
                let (value, rest) = read_tlv(rest)?;
                if atv.tag != 0x30 || kind.tag != 0x06 || !rest.is_empty() {
                    return None;
                }
                let oid = oid_text(kind.content)?;
                let value = value_bytes(&value);
                oneline.push(separator);
                separator = b'+';
                match short_name(&oid) {
                    Some(sn) => oneline.extend_from_slice(sn.as_bytes()),
                    // OpenSSL writes an unknown type into a buffer of eighty bytes, so
                    // a longer dotted form is cut to the seventy-nine that fit.
                    None => oneline.extend_from_slice(&oid.as_bytes()[..oid.len().min(79)]),
                }
                oneline.push(b'=');
                escape_value(&value, &mut oneline);
                attributes.push((oid, value));
            }
        }
        Some(Dn {
            oneline,
            attributes,
        })
    }

    fn put(&self, var: &str, put: &mut dyn FnMut(&str, &[u8])) {
        put(var, &self.oneline);
        let mut name = String::with_capacity(var.len() + 6);
        for (suffix, oid) in DN_PARTS {
            for (_, value) in self.attributes.iter().filter(|(o, _)| o == oid) {
                name.clear();
                name.push_str(var);
                name.push('_');
                name.push_str(suffix);
                put(&name, value);
            }
        }
    }
}

/// The bytes OpenSSL keeps for an attribute value (what `X509_NAME_oneline` prints and
/// `X509_NAME_ENTRY_get_data` gives): the contents, except that a SEQUENCE is kept whole,
/// its header included; a BIT STRING loses its count of unused bits and those bits; a
/// string sent in pieces (constructed, which DER forbids) is joined.
///
/// OpenSSL refuses a certificate whose name holds other kinds of values (an INTEGER, a
/// VisibleString, a context tag); rustls does not look, so they get their contents here.
fn value_bytes<'a>(value: &Tlv<'a>) -> Cow<'a, [u8]> {
    let universal = value.tag & 0xc0 == 0;
    let constructed = value.tag & 0x20 != 0;
    match value.tag & 0x1f {
        _ if !universal => Cow::Borrowed(value.content),
        16 => Cow::Borrowed(value.whole),
        3 if !constructed => match value.content.split_first() {
            Some((&unused, bits)) if !bits.is_empty() => {
                let mut bits = bits.to_vec();
                if let Some(last) = bits.last_mut() {
                    *last &= 0xff << (unused & 7);
                }
                Cow::Owned(bits)
            }
            _ => Cow::Borrowed(&[]),
        },
        _ if constructed => {
            let mut joined = Vec::with_capacity(value.content.len());
            if join_pieces(value.content, 0, &mut joined) {
                Cow::Owned(joined)
            } else {
                Cow::Borrowed(value.content)
            }
        }
        _ => Cow::Borrowed(value.content),
    }
}

/// The contents of the pieces of a constructed string, nested as deep as OpenSSL's
/// `asn1_collect` goes; false if they do not parse.
fn join_pieces(mut data: &[u8], depth: usize, out: &mut Vec<u8>) -> bool {
    if depth > 5 {
        return false;
    }
    while !data.is_empty() {
        let Some((piece, rest)) = read_tlv(data) else {
            return false;
        };
        if piece.tag & 0x20 != 0 {
            if !join_pieces(piece.content, depth + 1, out) {
                return false;
            }
        } else {
            out.extend_from_slice(piece.content);
        }
        data = rest;
    }
    true
}

/// One value as `X509_NAME_oneline` writes it: printable ASCII as is but '/' and '+'
/// behind a backslash, every other byte as `\xHH`; no character-set conversion, so a
/// UTF-8 or BMP value shows its encoding bytes.
fn escape_value(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        match b {
            b'/' | b'+' => out.extend_from_slice(&[b'\\', b]),
            b' '..=b'~' => out.push(b),
            _ => out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]),
        }
    }
}

/// Subject alternative names as mod_ssl numbers them: DNS, Email and IPaddr each counted
/// from 0, in certificate order. An iPAddress of neither IPv4's nor IPv6's length (a
/// name constraint's address and mask, misplaced) is left out.
fn san_vars(cert: &X509Certificate<'_>) -> Vec<(String, Vec<u8>)> {
    let mut vars = Vec::new();
    // A missing, doubled or unreadable extension gives no names, as OpenSSL's
    // X509_get_ext_d2i gives none then.
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return vars;
    };
    let (mut dns, mut email, mut ip) = (0usize, 0usize, 0usize);
    for general in &san.value.general_names {
        let (kind, counter, value) = match general {
            GeneralName::DNSName(s) => ("DNS", &mut dns, s.as_bytes().to_vec()),
            GeneralName::RFC822Name(s) => ("Email", &mut email, s.as_bytes().to_vec()),
            // x509-parser keeps a name that is not UTF-8 aside; it is still a name.
            GeneralName::Invalid(tag, data) if tag.0 == 2 => ("DNS", &mut dns, data.to_vec()),
            GeneralName::Invalid(tag, data) if tag.0 == 1 => ("Email", &mut email, data.to_vec()),
            GeneralName::IPAddress(b) => {
                let text = if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                    Ipv4Addr::from(v4).to_string()
                } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                    // std writes RFC 5952's form: lower case, the longest run of zero
                    // groups shortened, a v4-mapped address dotted.
                    Ipv6Addr::from(v6).to_string()
                } else {
                    continue;
                };
                ("IPaddr", &mut ip, text.into_bytes())
            }
            _ => continue,
        };
        vars.push((format!("SAN_{kind}_{counter}"), value));
        *counter += 1;
    }
    vars
}

/// `BN_bn2dec` of the contents of a DER INTEGER: two's complement, big-endian.
fn bn2dec(bytes: &[u8]) -> Option<String> {
    let first = *bytes.first()?;
    let negative = first & 0x80 != 0;
    let magnitude: Cow<[u8]> = if negative {
        // Two's complement back to a magnitude: invert, then add one from the end.
        let mut m: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for b in m.iter_mut().rev() {
            let (sum, carry) = b.overflowing_add(1);
            *b = sum;
            if !carry {
                break;
            }
        }
        Cow::Owned(m)
    } else {
        Cow::Borrowed(bytes)
    };
    let mut n = Decimal::default();
    // Four bytes at a time keep the work quadratic in a quarter of the length.
    let head = magnitude.len() % 4;
    let (first_chunk, rest) = magnitude.split_at(head);
    for chunk in std::iter::once(first_chunk).chain(rest.chunks(4)) {
        if chunk.is_empty() {
            continue;
        }
        let v = chunk.iter().fold(0u64, |v, &b| v << 8 | u64::from(b));
        n.mul_add(1 << (8 * chunk.len()), v);
    }
    let digits = n.to_string();
    Some(if negative && digits != "0" {
        format!("-{digits}")
    } else {
        digits
    })
}

/// A non-negative integer of any size in base 10^9 limbs, least significant first, for
/// decimal text of serials and OID arcs without a bignum crate.
#[derive(Default)]
struct Decimal(Vec<u32>);

const LIMB: u64 = 1_000_000_000;

impl Decimal {
    /// self = self * mul + add, for `mul` and `add` up to 2^32.
    fn mul_add(&mut self, mul: u64, add: u64) {
        let mut carry = add;
        for limb in &mut self.0 {
            let v = u64::from(*limb) * mul + carry;
            *limb = (v % LIMB) as u32;
            carry = v / LIMB;
        }
        while carry > 0 {
            self.0.push((carry % LIMB) as u32);
            carry /= LIMB;
        }
    }

    /// The value if it is below 10^9.
    fn small(&self) -> Option<u32> {
        match self.0.as_slice() {
            [] => Some(0),
            [v] => Some(*v),
            _ => None,
        }
    }

    /// self -= n, for a value known to be at least n.
    fn sub_small(&mut self, n: u32) {
        let mut borrow = u64::from(n);
        for limb in &mut self.0 {
            if borrow == 0 {
                break;
            }
            let v = u64::from(*limb);
            if v >= borrow {
                *limb = (v - borrow) as u32;
                borrow = 0;
            } else {
                *limb = (v + LIMB - borrow) as u32;
                borrow = 1;
            }
        }
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut limbs = self.0.iter().rev().skip_while(|&&l| l == 0);
        match limbs.next() {
            None => f.write_str("0"),
            Some(top) => {
                write!(f, "{top}")?;
                limbs.try_for_each(|l| write!(f, "{l:09}"))
            }
        }
    }
}

/// The dotted form of an OID from its DER contents, as `OBJ_obj2txt` writes it: the first
/// two arcs from the first subidentifier, arcs of any size. None where OpenSSL refuses
/// the encoding (empty, a padding byte 0x80 starting a subidentifier, cut short).
fn oid_text(bytes: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(bytes.len() * 3);
    let mut arc = Decimal::default();
    let mut started = false;
    let mut first = true;
    for &b in bytes {
        if !started && b == 0x80 {
            return None;
        }
        started = true;
        arc.mul_add(128, u64::from(b & 0x7f));
        if b & 0x80 != 0 {
            continue;
        }
        if first {
            first = false;
            let top = match arc.small() {
                Some(v) if v < 80 => {
                    arc = Decimal(vec![v % 40]);
                    v / 40
                }
                _ => {
                    arc.sub_small(80);
                    2
                }
            };
            out.push_str(&top.to_string());
        }
        out.push('.');
        out.push_str(&arc.to_string());
        arc = Decimal::default();
        started = false;
    }
    if started || first {
        return None;
    }
    Some(out)
}

/// OpenSSL's short names (`OBJ_nid2sn`) of the attribute types a DN may hold, as
/// OpenSSL 3.0 knows them; a type not here is printed dotted.
const SHORT_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.4", "SN"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "street"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.12", "title"),
    ("2.5.4.13", "description"),
    ("2.5.4.14", "searchGuide"),
    ("2.5.4.15", "businessCategory"),
    ("2.5.4.16", "postalAddress"),
    ("2.5.4.17", "postalCode"),
    ("2.5.4.18", "postOfficeBox"),
    ("2.5.4.19", "physicalDeliveryOfficeName"),
    ("2.5.4.20", "telephoneNumber"),
    ("2.5.4.21", "telexNumber"),
    ("2.5.4.22", "teletexTerminalIdentifier"),
    ("2.5.4.23", "facsimileTelephoneNumber"),
    ("2.5.4.24", "x121Address"),
    ("2.5.4.25", "internationaliSDNNumber"),
    ("2.5.4.26", "registeredAddress"),
    ("2.5.4.27", "destinationIndicator"),
    ("2.5.4.28", "preferredDeliveryMethod"),
    ("2.5.4.29", "presentationAddress"),
    ("2.5.4.30", "supportedApplicationContext"),
    ("2.5.4.31", "member"),
    ("2.5.4.32", "owner"),
    ("2.5.4.33", "roleOccupant"),
    ("2.5.4.34", "seeAlso"),
    ("2.5.4.35", "userPassword"),
    ("2.5.4.36", "userCertificate"),
    ("2.5.4.37", "cACertificate"),
    ("2.5.4.38", "authorityRevocationList"),
    ("2.5.4.39", "certificateRevocationList"),
    ("2.5.4.40", "crossCertificatePair"),
    ("2.5.4.41", "name"),
    ("2.5.4.42", "GN"),
    ("2.5.4.43", "initials"),
    ("2.5.4.44", "generationQualifier"),
    ("2.5.4.45", "x500UniqueIdentifier"),
    ("2.5.4.46", "dnQualifier"),
    ("2.5.4.47", "enhancedSearchGuide"),
    ("2.5.4.48", "protocolInformation"),
    ("2.5.4.49", "distinguishedName"),
    ("2.5.4.50", "uniqueMember"),
    ("2.5.4.51", "houseIdentifier"),
    ("2.5.4.52", "supportedAlgorithms"),
    ("2.5.4.53", "deltaRevocationList"),
    ("2.5.4.54", "dmdName"),
    ("2.5.4.65", "pseudonym"),
    ("2.5.4.72", "role"),
    ("2.5.4.97", "organizationIdentifier"),
    ("2.5.4.98", "c3"),
    ("2.5.4.99", "n3"),
    ("2.5.4.100", "dnsName"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.2", "textEncodedORAddress"),
    ("0.9.2342.19200300.100.1.3", "mail"),
    ("0.9.2342.19200300.100.1.4", "info"),
    ("0.9.2342.19200300.100.1.5", "favouriteDrink"),
    ("0.9.2342.19200300.100.1.6", "roomNumber"),
    ("0.9.2342.19200300.100.1.7", "photo"),
    ("0.9.2342.19200300.100.1.8", "userClass"),
    ("0.9.2342.19200300.100.1.9", "host"),
    ("0.9.2342.19200300.100.1.10", "manager"),
    ("0.9.2342.19200300.100.1.11", "documentIdentifier"),
    ("0.9.2342.19200300.100.1.12", "documentTitle"),
    ("0.9.2342.19200300.100.1.13", "documentVersion"),
    ("0.9.2342.19200300.100.1.14", "documentAuthor"),
    ("0.9.2342.19200300.100.1.15", "documentLocation"),
    ("0.9.2342.19200300.100.1.20", "homeTelephoneNumber"),
    ("0.9.2342.19200300.100.1.21", "secretary"),
    ("0.9.2342.19200300.100.1.22", "otherMailbox"),
    ("0.9.2342.19200300.100.1.23", "lastModifiedTime"),
    ("0.9.2342.19200300.100.1.24", "lastModifiedBy"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.26", "aRecord"),
    ("0.9.2342.19200300.100.1.27", "pilotAttributeType27"),
    ("0.9.2342.19200300.100.1.28", "mXRecord"),
    ("0.9.2342.19200300.100.1.29", "nSRecord"),
    ("0.9.2342.19200300.100.1.30", "sOARecord"),
    ("0.9.2342.19200300.100.1.31", "cNAMERecord"),
    ("0.9.2342.19200300.100.1.37", "associatedDomain"),
    ("0.9.2342.19200300.100.1.38", "associatedName"),
    ("0.9.2342.19200300.100.1.39", "homePostalAddress"),
    ("0.9.2342.19200300.100.1.40", "personalTitle"),
    ("0.9.2342.19200300.100.1.41", "mobileTelephoneNumber"),
    ("0.9.2342.19200300.100.1.42", "pagerTelephoneNumber"),
    ("0.9.2342.19200300.100.1.43", "friendlyCountryName"),
    ("0.9.2342.19200300.100.1.44", "uid"),
    ("0.9.2342.19200300.100.1.45", "organizationalStatus"),
    ("0.9.2342.19200300.100.1.46", "janetMailbox"),
    ("0.9.2342.19200300.100.1.47", "mailPreferenceOption"),
    ("0.9.2342.19200300.100.1.48", "buildingName"),
    ("0.9.2342.19200300.100.1.49", "dSAQuality"),
    ("0.9.2342.19200300.100.1.50", "singleLevelQuality"),
    ("0.9.2342.19200300.100.1.51", "subtreeMinimumQuality"),
    ("0.9.2342.19200300.100.1.52", "subtreeMaximumQuality"),
    ("0.9.2342.19200300.100.1.53", "personalSignature"),
    ("0.9.2342.19200300.100.1.54", "dITRedirect"),
    ("0.9.2342.19200300.100.1.55", "audio"),
    ("0.9.2342.19200300.100.1.56", "documentPublisher"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
    ("1.2.840.113549.1.9.2", "unstructuredName"),
    ("1.2.840.113549.1.9.3", "contentType"),
    ("1.2.840.113549.1.9.4", "messageDigest"),
    ("1.2.840.113549.1.9.5", "signingTime"),
    ("1.2.840.113549.1.9.6", "countersignature"),
    ("1.2.840.113549.1.9.7", "challengePassword"),
    ("1.2.840.113549.1.9.8", "unstructuredAddress"),
    ("1.2.840.113549.1.9.9", "extendedCertificateAttributes"),
    ("1.2.840.113549.1.9.14", "extReq"),
    ("1.2.840.113549.1.9.15", "SMIME-CAPS"),
    ("1.2.840.113549.1.9.16", "SMIME"),
    ("1.2.840.113549.1.9.20", "friendlyName"),
    ("1.2.840.113549.1.9.21", "localKeyID"),
    ("1.3.6.1.4.1.311.60.2.1.1", "jurisdictionL"),
    ("1.3.6.1.4.1.311.60.2.1.2", "jurisdictionST"),
    ("1.3.6.1.4.1.311.60.2.1.3", "jurisdictionC"),
    ("1.3.6.1.5.5.7.9.1", "id-pda-dateOfBirth"),
    ("1.3.6.1.5.5.7.9.2", "id-pda-placeOfBirth"),
    ("1.3.6.1.5.5.7.9.3", "id-pda-gender"),
    ("1.3.6.1.5.5.7.9.4", "id-pda-countryOfCitizenship"),
    ("1.3.6.1.5.5.7.9.5", "id-pda-countryOfResidence"),
    ("1.2.643.3.131.1.1", "INN"),
    ("1.2.643.100.1", "OGRN"),
    ("1.2.643.100.3", "SNILS"),
    ("1.2.643.100.5", "OGRNIP"),
];

fn short_name(oid: &str) -> Option<&'static str> {
    SHORT_NAMES
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, sn)| *sn)
}

/// OpenSSL's long names (`OBJ_nid2ln`) of signature and public key algorithms.
const LONG_NAMES: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.1", "rsaEncryption"),
    ("1.2.840.113549.1.1.2", "md2WithRSAEncryption"),
    ("1.2.840.113549.1.1.3", "md4WithRSAEncryption"),
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption"),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.2.840.113549.1.1.10", "rsassaPss"),
    ("1.2.840.113549.1.1.11", "sha256WithRSAEncryption"),
    ("1.2.840.113549.1.1.12", "sha384WithRSAEncryption"),
    ("1.2.840.113549.1.1.13", "sha512WithRSAEncryption"),
    ("1.2.840.113549.1.1.14", "sha224WithRSAEncryption"),
    ("1.2.840.113549.1.1.15", "sha512-224WithRSAEncryption"),
    ("1.2.840.113549.1.1.16", "sha512-256WithRSAEncryption"),
    ("1.3.14.3.2.29", "sha1WithRSA"),
    ("1.3.36.3.3.1.2", "ripemd160WithRSA"),
    ("1.2.840.10045.2.1", "id-ecPublicKey"),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.2.840.10045.4.3.1", "ecdsa-with-SHA224"),
    ("1.2.840.10045.4.3.2", "ecdsa-with-SHA256"),
    ("1.2.840.10045.4.3.3", "ecdsa-with-SHA384"),
    ("1.2.840.10045.4.3.4", "ecdsa-with-SHA512"),
    ("1.3.101.110", "X25519"),
    ("1.3.101.111", "X448"),
    ("1.3.101.112", "ED25519"),
    ("1.3.101.113", "ED448"),
    ("1.2.840.10040.4.1", "dsaEncryption"),
    ("1.2.840.10040.4.3", "dsaWithSHA1"),
    ("1.3.14.3.2.12", "dsaEncryption-old"),
    ("1.3.14.3.2.27", "dsaWithSHA1-old"),
    ("2.16.840.1.101.3.4.3.1", "dsa_with_SHA224"),
    ("2.16.840.1.101.3.4.3.2", "dsa_with_SHA256"),
    ("2.16.840.1.101.3.4.3.3", "dsa_with_SHA384"),
    ("2.16.840.1.101.3.4.3.4", "dsa_with_SHA512"),
    ("2.16.840.1.101.3.4.3.5", "dsa_with_SHA3-224"),
    ("2.16.840.1.101.3.4.3.6", "dsa_with_SHA3-256"),
    ("2.16.840.1.101.3.4.3.7", "dsa_with_SHA3-384"),
    ("2.16.840.1.101.3.4.3.8", "dsa_with_SHA3-512"),
    ("2.16.840.1.101.3.4.3.9", "ecdsa_with_SHA3-224"),
    ("2.16.840.1.101.3.4.3.10", "ecdsa_with_SHA3-256"),
    ("2.16.840.1.101.3.4.3.11", "ecdsa_with_SHA3-384"),
    ("2.16.840.1.101.3.4.3.12", "ecdsa_with_SHA3-512"),
    ("2.16.840.1.101.3.4.3.13", "RSA-SHA3-224"),
    ("2.16.840.1.101.3.4.3.14", "RSA-SHA3-256"),
    ("2.16.840.1.101.3.4.3.15", "RSA-SHA3-384"),
    ("2.16.840.1.101.3.4.3.16", "RSA-SHA3-512"),
    ("1.2.840.10046.2.1", "X9.42 DH"),
    ("1.2.840.113549.1.3.1", "dhKeyAgreement"),
    ("1.2.156.10197.1.301", "sm2"),
    ("1.2.156.10197.1.501", "SM2-with-SM3"),
];

fn long_name(oid: &str) -> Option<&'static str> {
    LONG_NAMES
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, ln)| *ln)
}

/// One DER element: its first identifier byte, its whole encoding and its contents.
struct Tlv<'a> {
    tag: u8,
    whole: &'a [u8],
    content: &'a [u8],
}

/// The next element of `input` and what follows it: DER's definite lengths only, as
/// x509-parser has already required of the certificate.
fn read_tlv(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let tag = *input.first()?;
    let mut at = 1;
    if tag & 0x1f == 0x1f {
        // The tag number goes on in base 128; more than four bytes of it do not fit
        // OpenSSL's tag either.
        let more = input
            .get(1..)?
            .iter()
            .take(4)
            .take_while(|&&b| b & 0x80 != 0)
            .count();
        if more == 4 {
            return None;
        }
        at += more + 1;
    }
    let first = *input.get(at)?;
    at += 1;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len_bytes = input.get(at..at + n)?;
        at += n;
        let len = len_bytes.iter().fold(0u64, |l, &b| l << 8 | u64::from(b));
        usize::try_from(len).ok()?
    };
    let end = at.checked_add(len)?;
    let whole = input.get(..end)?;
    Some((
        Tlv {
            tag,
            whole,
            content: &whole[at..],
        },
        &input[end..],
    ))
}

/// What is read from a TBSCertificate's own DER.
struct TbsParts<'a> {
    issuer: Tlv<'a>,
    not_before: Tlv<'a>,
    not_after: Tlv<'a>,
    subject: Tlv<'a>,
}

impl<'a> TbsParts<'a> {
    /// From the whole TBSCertificate: version (optional), serial, signature, issuer,
    /// validity, subject.
    fn read(tbs: &'a [u8]) -> Option<Self> {
        let (tbs, _) = read_tlv(tbs)?;
        let (first, mut rest) = read_tlv(tbs.content)?;
        if first.tag == 0xa0 {
            (_, rest) = read_tlv(rest)?;
        }
        let (_signature, rest) = read_tlv(rest)?;
        let (issuer, rest) = read_tlv(rest)?;
        let (validity, rest) = read_tlv(rest)?;
        let (subject, _) = read_tlv(rest)?;
        let (not_before, times) = read_tlv(validity.content)?;
        let (not_after, _) = read_tlv(times)?;
        Some(TbsParts {
            issuer,
            not_before,
            not_after,
            subject,
        })
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `ASN1_TIME_print`: "Dec  7 12:42:48 2026 GMT". A GeneralizedTime keeps its fraction
/// of a second; a time with an offset is moved to UTC; what OpenSSL cannot read is "Bad
/// time value", as it prints then.
fn time_print(t: &Tlv<'_>) -> String {
    let utc = match t.tag {
        0x17 => true,
        0x18 => false,
        _ => return "Bad time value".to_string(),
    };
    let a = t.content;
    let Some(tm) = time_fields(utc, a) else {
        return "Bad time value".to_string();
    };
    let mut s = format!(
        "{} {:2} {:02}:{:02}:{:02}",
        MONTHS[tm.month0], tm.day, tm.hour, tm.minute, tm.second
    );
    if !utc && a.len() > 15 && a[14] == b'.' {
        let digits = a[15..].iter().take_while(|b| b.is_ascii_digit()).count();
        s.push('.');
        s.extend(a[15..15 + digits].iter().map(|&b| char::from(b)));
    }
    s.push_str(&format!(" {} GMT", tm.year));
    s
}

#[derive(Default)]
struct Tm {
    year: i64,
    month0: usize,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

/// The reading of OpenSSL's `ossl_asn1_time_to_tm` for a time taken from a certificate
/// (not its strict RFC 5280 mode): seconds may be left out, a fraction and an offset
/// are allowed, the offset is applied.
fn time_fields(utc: bool, a: &[u8]) -> Option<Tm> {
    const MIN: [u32; 9] = [0, 0, 1, 1, 0, 0, 0, 0, 0];
    const MAX: [u32; 9] = [99, 99, 12, 31, 23, 59, 59, 12, 59];
    const MDAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let (end, before_zone, min_len) = if utc { (6, 5, 11) } else { (7, 6, 13) };
    let l = a.len();
    if l < min_len {
        return None;
    }
    // Two digits, and then more must follow: the zone is never optional.
    let two_digits = |o: &mut usize| -> Option<u32> {
        let mut n = 0;
        for _ in 0..2 {
            let d = *a.get(*o)?;
            if !d.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u32::from(d - b'0');
            *o += 1;
            if *o == l {
                return None;
            }
        }
        Some(n)
    };
    let mut tm = Tm::default();
    let mut o = 0;
    for i in 0..end {
        if i == before_zone && matches!(a.get(o), Some(b'Z' | b'+' | b'-')) {
            break;
        }
        let n = two_digits(&mut o)?;
        let field = if utc { i + 1 } else { i };
        if n < MIN[field] || n > MAX[field] {
            return None;
        }
        match field {
            0 => tm.year = i64::from(n) * 100,
            1 if utc => tm.year = i64::from(if n < 50 { 2000 + n } else { 1900 + n }),
            1 => tm.year += i64::from(n),
            2 => tm.month0 = (n - 1) as usize,
            3 => {
                let leap = tm.year % 400 == 0 || (tm.year % 100 != 0 && tm.year % 4 == 0);
                let days = MDAYS[tm.month0] + u32::from(tm.month0 == 1 && leap);
                if n > days {
                    return None;
                }
                tm.day = n;
            }
            4 => tm.hour = n,
            5 => tm.minute = n,
            _ => tm.second = n,
        }
    }
    if !utc && a.get(o) == Some(&b'.') {
        o += 1;
        let digits = a
            .get(o..)?
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        o += digits;
        if o >= l {
            return None;
        }
    }
    match a.get(o) {
        Some(b'Z') => o += 1,
        Some(&sign @ (b'+' | b'-')) => {
            o += 1;
            if o + 4 != l {
                return None;
            }
            let hours = two_digits_at(a, o)?;
            let minutes = two_digits_at(a, o + 2)?;
            if hours > MAX[7] || minutes > MAX[8] {
                return None;
            }
            o += 4;
            let offset = i64::from(hours * 3600 + minutes * 60);
            // The local time minus its offset is UTC.
            let shift = if sign == b'-' { offset } else { -offset };
            if shift != 0 {
                tm = shifted(&tm, shift)?;
            }
        }
        _ => return None,
    }
    (o == l).then_some(tm)
}

fn two_digits_at(a: &[u8], o: usize) -> Option<u32> {
    match a.get(o..o + 2)? {
        [h, l] if h.is_ascii_digit() && l.is_ascii_digit() => {
            Some(u32::from(h - b'0') * 10 + u32::from(l - b'0'))
        }
        _ => None,
    }
}

/// `tm` moved by `seconds`, refused outside the years OpenSSL's `OPENSSL_gmtime_adj` keeps
/// (1900 to 9999).
fn shifted(tm: &Tm, seconds: i64) -> Option<Tm> {
    let days = days_from_civil(tm.year, tm.month0 as i64 + 1, i64::from(tm.day));
    let secs = i64::from(tm.hour * 3600 + tm.minute * 60 + tm.second) + seconds;
    let days = days + secs.div_euclid(86_400);
    let secs = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(1900..=9999).contains(&year) {
        return None;
    }
    Some(Tm {
        year,
        month0: usize::try_from(month - 1).ok()?,
        day: u32::try_from(day).ok()?,
        hour: u32::try_from(secs / 3600).ok()?,
        minute: u32::try_from(secs / 60 % 60).ok()?,
        second: u32::try_from(secs % 60).ok()?,
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: year, month (1-12), day.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    /// A scratch directory of one test, removed when the test ends.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(test: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("tls-modssl-{}-{test}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create scratch directory");
            Scratch(dir)
        }

        fn path(&self, file: &str) -> PathBuf {
            self.0.join(file)
        }

        /// Runs the openssl command-line tool in this directory; its standard output.
        fn openssl(&self, args: &[&str]) -> Vec<u8> {
            let out = match Command::new("openssl").args(args).current_dir(&self.0).output() {
                Ok(out) => out,
                Err(e) => panic!(
                    "these tests compare with the openssl command-line tool, which could not be run: {e}"
                ),
            };
            assert!(
                out.status.success(),
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }

        fn openssl_text(&self, args: &[&str]) -> String {
            String::from_utf8_lossy(&self.openssl(args)).into_owned()
        }

        /// A PEM certificate of this directory as DER.
        fn der(&self, pem_file: &str) -> Vec<u8> {
            let der_file = format!("{pem_file}.der");
            self.openssl(&[
                "x509", "-in", pem_file, "-outform", "DER", "-out", &der_file,
            ]);
            std::fs::read(self.path(&der_file)).expect("read DER")
        }

        fn write(&self, file: &str, data: &[u8]) {
            std::fs::write(self.path(file), data).expect("write scratch file");
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    type Vars = Vec<(String, Vec<u8>)>;

    fn vars(side: Side, der: &[u8]) -> Vars {
        let mut v = Vars::new();
        cert_vars(side, der, &mut |n, val| {
            v.push((n.to_string(), val.to_vec()))
        })
        .expect("certificate parses");
        v
    }

    fn all<'a>(v: &'a Vars, name: &str) -> Vec<&'a [u8]> {
        v.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, val)| val.as_slice())
            .collect()
    }

    /// The value of a variable that must occur once, as text.
    fn one(v: &Vars, name: &str) -> String {
        let values = all(v, name);
        assert_eq!(values.len(), 1, "{name} in {:?}", names(v));
        String::from_utf8(values[0].to_vec()).expect("UTF-8 value")
    }

    fn names(v: &Vars) -> Vec<&str> {
        v.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Decimal text of a hexadecimal integer by long division, a way apart from the
    /// module's own.
    fn hex_to_dec(hex: &str) -> String {
        let (sign, hex) = match hex.strip_prefix('-') {
            Some(h) => ("-", h),
            None => ("", hex),
        };
        let mut digits: Vec<u32> = hex
            .chars()
            .map(|c| c.to_digit(16).expect("hex digit"))
            .collect();
        let mut out = Vec::new();
        while digits.iter().any(|&d| d != 0) {
            let mut rem = 0;
            for d in digits.iter_mut() {
                let cur = rem * 16 + *d;
                *d = cur / 10;
                rem = cur % 10;
            }
            out.push(char::from_digit(rem, 10).expect("digit"));
        }
        if out.is_empty() {
            out.push('0');
        }
        format!("{sign}{}", out.iter().rev().collect::<String>())
    }

    /// The text after `key=` in the output of `openssl x509 -noout -<key>`.
    fn field(out: &str, key: &str) -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .unwrap_or_else(|| panic!("no {key}= in {out}"))
            .to_string()
    }

    /// The first line of `openssl x509 -text` holding `label`, what follows it, trimmed.
    fn text_field(text: &str, label: &str) -> String {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label} in {text}"))
            .trim()
            .to_string()
    }

    /// Compares with what openssl prints for the same certificate every variable it has
    /// a counterpart for; returns the variables.
    fn check(dir: &Scratch, der: &[u8], side: Side) -> Vars {
        let v = vars(side, der);
        let p = side.prefix();
        dir.write("check.der", der);
        let der_args = ["x509", "-inform", "DER", "-in", "check.der"];
        let fields = dir.openssl_text(
            &[
                &der_args[..],
                &[
                    "-noout",
                    "-nameopt",
                    "compat",
                    "-subject",
                    "-issuer",
                    "-serial",
                    "-startdate",
                    "-enddate",
                ],
            ]
            .concat(),
        );
        assert_eq!(one(&v, &format!("{p}S_DN")), field(&fields, "subject"));
        assert_eq!(one(&v, &format!("{p}I_DN")), field(&fields, "issuer"));
        assert_eq!(
            one(&v, &format!("{p}M_SERIAL")),
            hex_to_dec(&field(&fields, "serial"))
        );
        assert_eq!(one(&v, &format!("{p}V_START")), field(&fields, "notBefore"));
        assert_eq!(one(&v, &format!("{p}V_END")), field(&fields, "notAfter"));

        let text = dir.openssl_text(&[&der_args[..], &["-noout", "-text"]].concat());
        let version = text_field(&text, "Version:");
        assert_eq!(
            Some(one(&v, &format!("{p}M_VERSION")).as_str()),
            version.split(' ').next()
        );
        assert_eq!(
            one(&v, &format!("{p}A_SIG")),
            text_field(&text, "Signature Algorithm:")
        );
        assert_eq!(
            one(&v, &format!("{p}A_KEY")),
            text_field(&text, "Public Key Algorithm:")
        );

        let pem_out = dir.openssl(&der_args);
        assert_eq!(all(&v, &format!("{p}CERT")), vec![pem_out.as_slice()]);
        v
    }

    /// A key and a self-signed certificate from it, with `req` options of its own.
    fn self_signed(dir: &Scratch, stem: &str, genpkey: &[&str], req: &[&str]) -> Vec<u8> {
        let key = format!("{stem}.key");
        let crt = format!("{stem}.pem");
        dir.openssl(&[&["genpkey"], genpkey, &["-out", &key]].concat());
        dir.openssl(
            &[
                &[
                    "req", "-new", "-x509", "-key", &key, "-out", &crt, "-days", "30",
                ],
                req,
            ]
            .concat(),
        );
        dir.der(&crt)
    }

    #[test]
    fn ec_p256_self_signed() {
        let dir = Scratch::new("ec");
        let der = self_signed(
            &dir,
            "ec",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            &[
                "-subj",
                "/C=DE/ST=Berlin/O=Compat Srv/OU=Mail/CN=localhost/emailAddress=x@y.z",
                "-addext",
                "subjectAltName=DNS:localhost,DNS:mail.example.com,IP:127.0.0.1,IP:::1,email:a@b.c",
            ],
        );
        let v = check(&dir, &der, Side::Server);
        assert_eq!(
            names(&v),
            [
                "SSL_SERVER_M_VERSION",
                "SSL_SERVER_M_SERIAL",
                "SSL_SERVER_S_DN",
                "SSL_SERVER_S_DN_C",
                "SSL_SERVER_S_DN_ST",
                "SSL_SERVER_S_DN_O",
                "SSL_SERVER_S_DN_OU",
                "SSL_SERVER_S_DN_CN",
                "SSL_SERVER_S_DN_Email",
                "SSL_SERVER_I_DN",
                "SSL_SERVER_I_DN_C",
                "SSL_SERVER_I_DN_ST",
                "SSL_SERVER_I_DN_O",
                "SSL_SERVER_I_DN_OU",
                "SSL_SERVER_I_DN_CN",
                "SSL_SERVER_I_DN_Email",
                "SSL_SERVER_A_SIG",
                "SSL_SERVER_A_KEY",
                "SSL_SERVER_SAN_DNS_0",
                "SSL_SERVER_SAN_DNS_1",
                "SSL_SERVER_SAN_IPaddr_0",
                "SSL_SERVER_SAN_IPaddr_1",
                "SSL_SERVER_SAN_Email_0",
                "SSL_SERVER_V_START",
                "SSL_SERVER_V_END",
                "SSL_SERVER_CERT",
            ]
        );
        let get = |n: &str| one(&v, &format!("SSL_SERVER_{n}"));
        assert_eq!(get("M_VERSION"), "3");
        assert_eq!(
            get("S_DN"),
            "/C=DE/ST=Berlin/O=Compat Srv/OU=Mail/CN=localhost/emailAddress=x@y.z"
        );
        assert_eq!(get("S_DN_C"), "DE");
        assert_eq!(get("S_DN_ST"), "Berlin");
        assert_eq!(get("S_DN_O"), "Compat Srv");
        assert_eq!(get("S_DN_OU"), "Mail");
        assert_eq!(get("S_DN_CN"), "localhost");
        assert_eq!(get("S_DN_Email"), "x@y.z");
        assert_eq!(get("I_DN"), get("S_DN"));
        assert_eq!(get("A_SIG"), "ecdsa-with-SHA256");
        assert_eq!(get("A_KEY"), "id-ecPublicKey");
        assert_eq!(get("SAN_DNS_0"), "localhost");
        assert_eq!(get("SAN_DNS_1"), "mail.example.com");
        assert_eq!(get("SAN_IPaddr_0"), "127.0.0.1");
        assert_eq!(get("SAN_IPaddr_1"), "::1");
        assert_eq!(get("SAN_Email_0"), "a@b.c");
        // The same names as openssl sees them (it writes IPv6 uncompressed).
        let text = dir.openssl_text(&["x509", "-in", "ec.pem", "-noout", "-ext", "subjectAltName"]);
        assert!(
            text.contains("DNS:localhost, DNS:mail.example.com, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, email:a@b.c"),
            "{text}"
        );
        assert!(get("V_END").ends_with(" GMT"));
    }

    #[test]
    fn rsa_ca_and_leaf() {
        let dir = Scratch::new("rsa");
        let ca = self_signed(
            &dir,
            "ca",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            &["-subj", "/C=DE/L=Berlin/O=Compat CA/CN=Compat Root"],
        );
        dir.openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "leaf.key",
        ]);
        dir.openssl(&[
            "req", "-new", "-key", "leaf.key", "-out", "leaf.csr", "-subj",
            "/CN=leaf.example/O=Leaf Org/OU=First/OU=Second/title=Boss/GN=Anna/SN=Berg/initials=AB/description=d/x500UniqueIdentifier=u1",
        ]);
        dir.openssl(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-days",
            "10",
            "-sha384",
            "-set_serial",
            "4660",
            "-out",
            "leaf.pem",
        ]);
        let leaf = dir.der("leaf.pem");

        let c = check(&dir, &ca, Side::Server);
        let v = check(&dir, &leaf, Side::Client);
        let get = |n: &str| one(&v, &format!("SSL_CLIENT_{n}"));
        assert!(names(&v).iter().all(|n| n.starts_with("SSL_CLIENT_")));
        assert_eq!(get("M_SERIAL"), "4660");
        assert_eq!(get("A_SIG"), "sha384WithRSAEncryption");
        assert_eq!(get("A_KEY"), "rsaEncryption");
        assert_eq!(get("I_DN"), one(&c, "SSL_SERVER_S_DN"));
        assert_eq!(get("I_DN"), "/C=DE/L=Berlin/O=Compat CA/CN=Compat Root");
        assert_eq!(get("I_DN_C"), "DE");
        assert_eq!(get("I_DN_L"), "Berlin");
        assert_eq!(get("I_DN_O"), "Compat CA");
        assert_eq!(get("I_DN_CN"), "Compat Root");
        assert_ne!(get("S_DN"), get("I_DN"));
        assert_eq!(
            all(&v, "SSL_CLIENT_S_DN_OU"),
            [b"First".as_slice(), b"Second".as_slice()]
        );
        for (n, want) in [
            ("T", "Boss"),
            ("G", "Anna"),
            ("S", "Berg"),
            ("I", "AB"),
            ("D", "d"),
            ("UID", "u1"),
        ] {
            assert_eq!(get(&format!("S_DN_{n}")), want);
        }
        let parts: Vec<&str> = names(&v)
            .into_iter()
            .filter_map(|n| n.strip_prefix("SSL_CLIENT_S_DN_"))
            .collect();
        assert_eq!(
            parts,
            ["O", "OU", "OU", "CN", "T", "I", "G", "S", "D", "UID"]
        );
        assert!(all(&v, "SSL_CLIENT_SAN_DNS_0").is_empty());
    }

    #[test]
    fn algorithms() {
        let dir = Scratch::new("alg");
        let rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
        /// A file stem, genpkey's and req's options, the signature and key names.
        type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a str, &'a str);
        let cases: [Case; 9] = [
            (
                "ed25519",
                &["-algorithm", "ED25519"],
                &[],
                "ED25519",
                "ED25519",
            ),
            ("ed448", &["-algorithm", "ED448"], &[], "ED448", "ED448"),
            (
                "pss",
                &rsa,
                &["-sigopt", "rsa_padding_mode:pss", "-sha256"],
                "rsassaPss",
                "rsaEncryption",
            ),
            (
                "psskey",
                &["-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048"],
                &[],
                "rsassaPss",
                "rsassaPss",
            ),
            (
                "sha1",
                &rsa,
                &["-sha1"],
                "sha1WithRSAEncryption",
                "rsaEncryption",
            ),
            (
                "sha512",
                &rsa,
                &["-sha512"],
                "sha512WithRSAEncryption",
                "rsaEncryption",
            ),
            (
                "p384",
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
                &["-sha384"],
                "ecdsa-with-SHA384",
                "id-ecPublicKey",
            ),
            (
                "p521",
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
                &["-sha512"],
                "ecdsa-with-SHA512",
                "id-ecPublicKey",
            ),
            (
                "dsa",
                &["-paramfile", "dsa.param"],
                &["-sha256"],
                "dsa_with_SHA256",
                "dsaEncryption",
            ),
        ];
        dir.openssl(&[
            "genpkey",
            "-genparam",
            "-algorithm",
            "DSA",
            "-pkeyopt",
            "pbits:1024",
            "-pkeyopt",
            "qbits:160",
            "-out",
            "dsa.param",
        ]);
        for (stem, genpkey, req, sig, key) in cases {
            let subj = format!("/CN={stem}");
            let der = self_signed(&dir, stem, genpkey, &[&["-subj", &subj], req].concat());
            let v = check(&dir, &der, Side::Server);
            assert_eq!(one(&v, "SSL_SERVER_A_SIG"), sig, "{stem}");
            assert_eq!(one(&v, "SSL_SERVER_A_KEY"), key, "{stem}");
        }
    }

    #[test]
    fn long_names_as_openssl_has_them() {
        let dir = Scratch::new("ln");
        for (oid, ln) in LONG_NAMES {
            let out = dir.openssl_text(&["asn1parse", "-genstr", &format!("OID:{oid}")]);
            assert_eq!(out.rsplit(':').next().map(str::trim), Some(*ln), "{oid}");
        }
    }

    #[test]
    fn utf8_escapes_and_multivalued_rdn() {
        let dir = Scratch::new("utf8");
        let der = self_signed(
            &dir,
            "u",
            &["-algorithm", "ED25519"],
            &[
                "-utf8",
                "-subj",
                "/CN=J\u{fc}rgen/O=a\\/b\\+c=d\\\\e/OU=tab\tend/1.2.840.113549.1.9.20=J\u{fc}",
            ],
        );
        let v = check(&dir, &der, Side::Server);
        assert_eq!(
            one(&v, "SSL_SERVER_S_DN"),
            "/CN=J\\xC3\\xBCrgen/O=a\\/b\\+c=d\\e/OU=tab\\x09end/friendlyName=\\x00J\\x00\\xFC"
        );
        assert_eq!(all(&v, "SSL_SERVER_S_DN_CN"), ["J\u{fc}rgen".as_bytes()]);
        assert_eq!(all(&v, "SSL_SERVER_S_DN_O"), [b"a/b+c=d\\e".as_slice()]);

        let der = self_signed(
            &dir,
            "m",
            &["-algorithm", "ED25519"],
            &["-multivalue-rdn", "-subj", "/CN=a+O=b/OU=c+OU=d"],
        );
        let v = check(&dir, &der, Side::Server);
        assert_eq!(one(&v, "SSL_SERVER_S_DN"), "/CN=a+O=b/OU=c+OU=d");
    }

    #[test]
    fn every_short_name() {
        let dir = Scratch::new("sn");
        let subj: String = SHORT_NAMES
            .iter()
            .map(|(oid, _)| {
                let value = match *oid {
                    "2.5.4.98" | "2.5.4.99" => "123",
                    _ => "12",
                };
                format!("/{oid}={value}")
            })
            .collect();
        let der = self_signed(&dir, "sn", &["-algorithm", "ED25519"], &["-subj", &subj]);
        let v = check(&dir, &der, Side::Server);
        let dn = one(&v, "SSL_SERVER_S_DN");
        for (_, sn) in SHORT_NAMES {
            assert!(dn.contains(&format!("/{sn}=")), "{sn} in {dn}");
        }
    }

    #[test]
    fn serials() {
        let dir = Scratch::new("serial");
        let cases = [
            (
                "0x00FFEEDDCCBBAA99887766554433221100FFEE",
                "22294914938348000756400676254799303110885358",
            ),
            // Twenty bytes, the most RFC 5280 allows.
            (
                "654321098765432109876543210987654321098765432109",
                "654321098765432109876543210987654321098765432109",
            ),
            ("-1234567", "-1234567"),
            ("-0x80", "-128"),
            ("-0xFF", "-255"),
            (
                "-0x80000000000000000000000000000000000000",
                "-2854495385411919762116571938898990272765493248",
            ),
            ("0", "0"),
            ("127", "127"),
            ("128", "128"),
        ];
        for (n, (given, want)) in cases.iter().enumerate() {
            let stem = format!("s{n}");
            let der = self_signed(
                &dir,
                &stem,
                &["-algorithm", "ED25519"],
                &["-subj", "/CN=serial", &format!("-set_serial={given}")],
            );
            let v = check(&dir, &der, Side::Server);
            assert_eq!(one(&v, "SSL_SERVER_M_SERIAL"), *want, "{given}");
        }
        // Serials that fit u128 by a third way.
        for n in [0u128, 1, 255, 256, u128::from(u64::MAX), u128::MAX >> 1] {
            let bytes = n.to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count().min(15);
            let mut der = bytes[skip..].to_vec();
            if der[0] & 0x80 != 0 {
                der.insert(0, 0);
            }
            assert_eq!(bn2dec(&der).as_deref(), Some(n.to_string().as_str()));
        }
        assert_eq!(
            bn2dec(&i128::MIN.to_be_bytes()).as_deref(),
            Some(i128::MIN.to_string().as_str())
        );
        assert_eq!(bn2dec(&[0xff]).as_deref(), Some("-1"));
        assert_eq!(bn2dec(&[]), None);
    }

    #[test]
    fn generalized_time_after_2049() {
        let dir = Scratch::new("gtime");
        let der = self_signed(
            &dir,
            "g",
            &["-algorithm", "ED25519"],
            &["-subj", "/CN=long", "-days", "36500"],
        );
        let v = check(&dir, &der, Side::Server);
        assert!(one(&v, "SSL_SERVER_V_END").ends_with(" GMT"));
    }

    /// DER by hand, for what the openssl tool will not write.
    mod der {
        pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            if content.len() < 0x80 {
                out.push(content.len() as u8);
            } else {
                let bytes = content.len().to_be_bytes();
                let skip = bytes.iter().take_while(|&&b| b == 0).count();
                out.push(0x80 | (bytes.len() - skip) as u8);
                out.extend_from_slice(&bytes[skip..]);
            }
            out.extend_from_slice(content);
            out
        }

        pub fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
            tlv(0x30, &parts.concat())
        }

        pub fn oid(dotted: &str) -> Vec<u8> {
            let arcs: Vec<u128> = dotted.split('.').map(|a| a.parse().expect("arc")).collect();
            let mut content = Vec::new();
            let mut subs = vec![arcs[0] * 40 + arcs[1]];
            subs.extend_from_slice(&arcs[2..]);
            for mut s in subs {
                let mut groups = vec![(s & 0x7f) as u8];
                s >>= 7;
                while s > 0 {
                    groups.push((s & 0x7f) as u8 | 0x80);
                    s >>= 7;
                }
                content.extend(groups.iter().rev());
            }
            tlv(0x06, &content)
        }

        /// A Name of RDNs, each a list of (type, whole value element).
        pub fn name(rdns: &[&[(Vec<u8>, Vec<u8>)]]) -> Vec<u8> {
            let sets: Vec<Vec<u8>> = rdns
                .iter()
                .map(|rdn| {
                    let atvs: Vec<Vec<u8>> = rdn
                        .iter()
                        .map(|(t, v)| seq(&[t.clone(), v.clone()]))
                        .collect();
                    tlv(0x31, &atvs.concat())
                })
                .collect();
            seq(&sets)
        }

        pub struct Cert {
            pub version: Option<u8>,
            pub serial: Vec<u8>,
            pub issuer: Vec<u8>,
            pub not_before: Vec<u8>,
            pub not_after: Vec<u8>,
            pub subject: Vec<u8>,
            pub extensions: Option<Vec<u8>>,
        }

        impl Default for Cert {
            fn default() -> Self {
                let cn = name(&[&[(oid("2.5.4.3"), tlv(0x0c, b"hand"))]]);
                Cert {
                    version: Some(2),
                    serial: vec![0x01],
                    issuer: cn.clone(),
                    not_before: tlv(0x17, b"250102030405Z"),
                    not_after: tlv(0x18, b"20510607080910Z"),
                    subject: cn,
                    extensions: None,
                }
            }
        }

        impl Cert {
            /// The certificate, signed with nothing: neither side here checks the signature.
            pub fn der(&self) -> Vec<u8> {
                let ed25519 = seq(&[oid("1.3.101.112")]);
                let mut tbs = Vec::new();
                if let Some(v) = self.version {
                    tbs.push(tlv(0xa0, &tlv(0x02, &[v])));
                }
                tbs.push(tlv(0x02, &self.serial));
                tbs.push(ed25519.clone());
                tbs.push(self.issuer.clone());
                tbs.push(seq(&[self.not_before.clone(), self.not_after.clone()]));
                tbs.push(self.subject.clone());
                let mut key = vec![0u8];
                key.extend_from_slice(&[7u8; 32]);
                tbs.push(seq(&[ed25519.clone(), tlv(0x03, &key)]));
                if let Some(e) = &self.extensions {
                    tbs.push(tlv(0xa3, &seq(std::slice::from_ref(e))));
                }
                let mut sig = vec![0u8];
                sig.extend_from_slice(&[9u8; 64]);
                seq(&[seq(&tbs), ed25519, tlv(0x03, &sig)])
            }
        }
    }

    #[test]
    fn hand_built_names() {
        use der::{name, oid, seq, tlv};
        let dir = Scratch::new("names");
        let long_oid = format!("1.3.6.1.4.1.{}", ["123456789"; 9].join("."));
        let values: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (oid("2.5.4.3"), tlv(0x1e, &[0, b'J', 0, 0xfc, 0, b'/'])),
            (oid("2.5.4.10"), tlv(0x1c, &[0, 0, 0, b'U'])),
            (oid("2.5.4.11"), tlv(0x14, &[b'T', 0xe9, 0x7f, 0x00])),
            (oid("2.5.4.7"), tlv(0x13, b"")),
            (oid("2.5.4.8"), tlv(0x16, b"ia5\xff")),
            (oid("2.5.4.9"), tlv(0x12, b"12 3")),
            (oid("2.5.4.13"), seq(&[tlv(0x0c, b"in a sequence")])),
            (oid("2.5.4.12"), tlv(0x03, &[0x04, b'a', 0xf7])),
            (
                oid("2.5.4.42"),
                tlv(0x2c, &[tlv(0x0c, b"in "), tlv(0x0c, b"pieces")].concat()),
            ),
            (oid("2.5.4.43"), tlv(0x07, b"descriptor")),
            (oid("2.5.4.4"), tlv(0x0d, &[1, 2])),
            (oid("1.2.3.4"), tlv(0x0c, b"unknown")),
            (oid(&long_oid), tlv(0x0c, b"long")),
            (oid("2.999.1"), tlv(0x0c, b"big first arc")),
            (
                oid("2.340282366920938463463374607431768211000.5"),
                tlv(0x0c, b"huge"),
            ),
            (oid("1.39.18446744073709551616"), tlv(0x0c, b"wide")),
        ];
        let rdns: Vec<&[(Vec<u8>, Vec<u8>)]> = values.iter().map(std::slice::from_ref).collect();
        let cert = der::Cert {
            subject: name(&rdns),
            ..Default::default()
        };
        let v = check(&dir, &cert.der(), Side::Server);
        let dn = one(&v, "SSL_SERVER_S_DN");
        assert_eq!(
            dn,
            format!(
                "/CN=\\x00J\\x00\\xFC\\x00\\//O=\\x00\\x00\\x00U/OU=T\\xE9\\x7F\\x00/L=/ST=ia5\\xFF/street=12 3\
                 /description=0\\x0F\\x0C\\x0Din a sequence/title=a\\xF0/GN=in pieces/initials=descriptor\
                 /SN=\\x01\\x02/1.2.3.4=unknown/{}=long/2.999.1=big first arc\
                 /2.340282366920938463463374607431768211000.5=huge/1.39.18446744073709551616=wide",
                &long_oid[..79]
            )
        );
        assert_eq!(
            all(&v, "SSL_SERVER_S_DN_CN"),
            [[0, b'J', 0, 0xfc, 0, b'/'].as_slice()]
        );
        assert_eq!(
            all(&v, "SSL_SERVER_S_DN_D"),
            [seq(&[tlv(0x0c, b"in a sequence")]).as_slice()]
        );
        assert_eq!(all(&v, "SSL_SERVER_S_DN_T"), [b"a\xf0".as_slice()]);
        assert_eq!(all(&v, "SSL_SERVER_S_DN_G"), [b"in pieces".as_slice()]);

        let cert = der::Cert {
            subject: name(&[]),
            issuer: name(&[&[], &[(oid("2.5.4.3"), tlv(0x0c, b"after an empty RDN"))]]),
            ..Default::default()
        };
        let v = check(&dir, &cert.der(), Side::Server);
        assert_eq!(one(&v, "SSL_SERVER_S_DN"), "");
        assert_eq!(one(&v, "SSL_SERVER_I_DN"), "/CN=after an empty RDN");
    }

    /// Values OpenSSL refuses to read in a name, so that it refuses the certificate: their
    /// contents, escaped as any other.
    #[test]
    fn values_openssl_refuses() {
        use der::{name, oid, tlv};
        let values: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (oid("2.5.4.3"), tlv(0x1a, b"visible")),
            (oid("2.5.4.3"), tlv(0x1b, &[0, 0, 0, b'G'])),
            (oid("2.5.4.3"), tlv(0x02, &[5])),
            (oid("2.5.4.3"), tlv(0x80, b"ctx")),
            (oid("2.5.4.3"), tlv(0x0c, &[0xff, 0xfe])),
        ];
        let rdns: Vec<&[(Vec<u8>, Vec<u8>)]> = values.iter().map(std::slice::from_ref).collect();
        let cert = der::Cert {
            subject: name(&rdns),
            ..Default::default()
        };
        let v = vars(Side::Server, &cert.der());
        assert_eq!(
            one(&v, "SSL_SERVER_S_DN"),
            "/CN=visible/CN=\\x00\\x00\\x00G/CN=\\x05/CN=ctx/CN=\\xFF\\xFE"
        );
        assert_eq!(all(&v, "SSL_SERVER_S_DN_CN").len(), 5);
    }

    #[test]
    fn hand_built_times_and_version() {
        use der::tlv;
        let dir = Scratch::new("times");
        let times: &[(u8, &[u8])] = &[
            (0x17, b"500101000000Z"),
            (0x17, b"491231235959Z"),
            (0x17, b"240229120000Z"),
            (0x18, b"19500101000000Z"),
            (0x18, b"99991231235959Z"),
            (0x18, b"20250102030405.123Z"),
            (0x18, b"20250102030405.5Z"),
            (0x17, b"2501020304Z"),
            (0x17, b"250102030405+0130"),
            (0x17, b"250101000000-0100"),
            (0x18, b"20250102030405-0000"),
            (0x18, b"20250102030405.25+0100"),
        ];
        let mut parsed = 0;
        for &(tag, text) in times {
            let cert = der::Cert {
                not_before: tlv(tag, text),
                not_after: tlv(tag, text),
                ..Default::default()
            };
            let der = cert.der();
            let mut sink = |_: &str, _: &[u8]| {};
            // x509-parser may refuse what OpenSSL reads; what it takes must match.
            if cert_vars(Side::Server, &der, &mut sink).is_ok() {
                check(&dir, &der, Side::Server);
                parsed += 1;
            }
            // The printing follows OpenSSL on every one of them.
            dir.write("t.der", &der);
            let out = dir.openssl_text(&[
                "x509",
                "-inform",
                "DER",
                "-in",
                "t.der",
                "-noout",
                "-startdate",
            ]);
            assert_eq!(
                time_print(&Tlv {
                    tag,
                    whole: &[],
                    content: text
                }),
                field(&out, "notBefore"),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        assert!(parsed >= 5, "x509-parser took only {parsed} of the times");

        let v1 = der::Cert {
            version: None,
            ..Default::default()
        };
        let v = check(&dir, &v1.der(), Side::Server);
        assert_eq!(one(&v, "SSL_SERVER_M_VERSION"), "1");
    }

    #[test]
    fn time_printing_edges() {
        let print = |tag, s: &[u8]| {
            time_print(&Tlv {
                tag,
                whole: &[],
                content: s,
            })
        };
        assert_eq!(print(0x17, b"261207124248Z"), "Dec  7 12:42:48 2026 GMT");
        assert_eq!(print(0x17, b"261207124248"), "Bad time value");
        assert_eq!(print(0x17, b"261307124248Z"), "Bad time value");
        assert_eq!(print(0x17, b"250229000000Z"), "Bad time value");
        assert_eq!(print(0x18, b"19000101000000+0100"), "Bad time value");
        assert_eq!(print(0x18, b"20250102030405.Z"), "Bad time value");
        assert_eq!(print(0x04, b"261207124248Z"), "Bad time value");
        assert_eq!(print(0x17, b""), "Bad time value");
    }

    #[test]
    fn sans_of_every_kind() {
        use der::{oid, seq, tlv};
        let dir = Scratch::new("sans");
        let names = [
            tlv(0x82, b"a.example"),
            tlv(0x87, &[10, 0, 0, 1]),
            tlv(0x81, b"m@example.org"),
            tlv(
                0x87,
                &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1],
            ),
            tlv(
                0x87,
                &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1],
            ),
            tlv(0x87, &[1, 2, 3]),
            tlv(0x86, b"https://example/"),
            tlv(0x82, b"b.example"),
            tlv(0x82, b"caf\xe9"),
        ];
        let ext = seq(&[oid("2.5.29.17"), tlv(0x04, &seq(&names))]);
        let cert = der::Cert {
            extensions: Some(ext),
            ..Default::default()
        };
        let v = check(&dir, &cert.der(), Side::Client);
        let sans: Vec<(&str, &[u8])> = v
            .iter()
            .filter_map(|(n, val)| {
                n.strip_prefix("SSL_CLIENT_SAN_")
                    .map(|n| (n, val.as_slice()))
            })
            .collect();
        assert_eq!(
            sans,
            [
                ("DNS_0", b"a.example".as_slice()),
                ("IPaddr_0", b"10.0.0.1"),
                ("Email_0", b"m@example.org"),
                ("IPaddr_1", b"2001:db8::1:0:0:1"),
                ("IPaddr_2", b"::ffff:192.0.2.1"),
                ("DNS_1", b"b.example"),
                ("DNS_2", b"caf\xe9"),
            ]
        );
    }

    #[test]
    fn garbage_is_an_error() {
        let mut sink = |_: &str, _: &[u8]| panic!("a variable from a bad certificate");
        for bad in [
            &b""[..],
            b"\x30",
            b"\x30\x00",
            b"not a certificate at all",
            &[0xff; 64],
        ] {
            assert!(cert_vars(Side::Server, bad, &mut sink).is_err());
        }
        let good = der::Cert::default().der();
        assert!(cert_vars(Side::Server, &[good.as_slice(), b"\0"].concat(), &mut sink).is_err());
        for cut in 0..good.len() {
            assert!(
                cert_vars(Side::Server, &good[..cut], &mut sink).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn changed_bytes_never_panic() {
        let dir = Scratch::new("fuzz");
        let good = self_signed(
            &dir,
            "f",
            &["-algorithm", "ED25519"],
            &[
                "-subj",
                "/C=DE/CN=fuzz/emailAddress=f@z",
                "-addext",
                "subjectAltName=DNS:a,IP:::1,email:b@c",
            ],
        );
        let mut sink = |_: &str, _: &[u8]| {};
        for i in 0..good.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] ^= x;
                let _ = cert_vars(Side::Server, &bad, &mut sink);
            }
        }
    }

    #[test]
    fn chain_vars_count_from_zero() {
        let a = der::Cert::default().der();
        let b = der::Cert {
            serial: vec![2],
            ..Default::default()
        }
        .der();
        let mut v = Vars::new();
        chain_vars(Side::Client, &[&a, &b], &mut |n, val| {
            v.push((n.to_string(), val.to_vec()))
        });
        assert_eq!(
            names(&v),
            ["SSL_CLIENT_CERT_CHAIN_0", "SSL_CLIENT_CERT_CHAIN_1"]
        );
        assert_eq!(v[0].1, pem(&a));
        assert_eq!(v[1].1, pem(&b));
        v.clear();
        chain_vars(Side::Server, &[], &mut |n, val| {
            v.push((n.to_string(), val.to_vec()))
        });
        assert!(v.is_empty());
    }

    #[test]
    fn pem_lines() {
        let wrap = |body: &str| {
            format!("-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n").into_bytes()
        };
        assert_eq!(pem(b""), wrap(""));
        assert_eq!(pem(b"f"), wrap("Zg==\n"));
        assert_eq!(pem(b"fo"), wrap("Zm8=\n"));
        assert_eq!(pem(b"foo"), wrap("Zm9v\n"));
        assert_eq!(pem(&[0xfb, 0xff]), wrap("+/8=\n"));
        let line = "A".repeat(64);
        assert_eq!(pem(&[0u8; 48]), wrap(&format!("{line}\n")));
        assert_eq!(pem(&[0u8; 49]), wrap(&format!("{line}\nAA==\n")));
    }

    #[test]
    fn oid_text_forms() {
        assert_eq!(oid_text(&[0x2a, 0x86, 0x48]).as_deref(), Some("1.2.840"));
        assert_eq!(oid_text(&[0x00]).as_deref(), Some("0.0"));
        assert_eq!(oid_text(&[0x4f]).as_deref(), Some("1.39"));
        assert_eq!(oid_text(&[0x50]).as_deref(), Some("2.0"));
        assert_eq!(oid_text(&[0x88, 0x37]).as_deref(), Some("2.999"));
        assert_eq!(oid_text(&[]), None);
        assert_eq!(oid_text(&[0x2a, 0x80, 0x01]), None);
        assert_eq!(oid_text(&[0x2a, 0x86]), None);
    }
}
