//! djb's cdb_make in memory, for the fuzz targets: the same layout as `cdb2::CDBMake`
//! (records in order, 256 tables of twice as many slots as entries, linear probing from
//! `(h >> 8) % slots`), without a file.

pub fn make(records: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0u8; 2048];
    let mut entries: Vec<Vec<(u32, u32)>> = vec![Vec::new(); 256];
    for (k, d) in records {
        let h = ucspi::cdb::hash(k);
        entries[(h & 255) as usize].push((h, out.len() as u32));
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(d.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(d);
    }
    for (i, list) in entries.iter().enumerate() {
        let slots = list.len() * 2;
        let pos = out.len() as u32;
        out[i * 8..i * 8 + 4].copy_from_slice(&pos.to_le_bytes());
        out[i * 8 + 4..i * 8 + 8].copy_from_slice(&(slots as u32).to_le_bytes());
        let mut table = vec![(0u32, 0u32); slots];
        for &(h, p) in list {
            let mut w = (h >> 8) as usize % slots;
            while table[w].1 != 0 {
                w = (w + 1) % slots;
            }
            table[w] = (h, p);
        }
        for (h, p) in table {
            out.extend_from_slice(&h.to_le_bytes());
            out.extend_from_slice(&p.to_le_bytes());
        }
    }
    out
}
