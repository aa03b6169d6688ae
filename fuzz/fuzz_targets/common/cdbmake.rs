//! djb's cdb_make in memory, for the fuzz targets: the same layout as `cdb2::CDBMake`
//! (records in order, 256 tables of twice as many slots as entries, linear probing from
//! `(h >> 8) % slots`), without a file. A handful of allocations per call, not one per
//! table: under AddressSanitizer each costs a stack trace.

pub fn make(records: &[(&[u8], &[u8])]) -> Vec<u8> {
    let size: usize = records.iter().map(|(k, d)| 8 + k.len() + d.len()).sum();
    let mut out = Vec::with_capacity(2048 + size + records.len() * 16);
    out.resize(2048, 0);
    let mut hashed = Vec::with_capacity(records.len());
    let mut count = [0usize; 257];
    for (k, d) in records {
        let h = ucspi::cdb::hash(k);
        hashed.push((h, out.len() as u32));
        count[(h & 255) as usize + 1] += 1;
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(d.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(d);
    }
    // Each table's entries in record order (a stable counting sort by bucket).
    for i in 1..257 {
        count[i] += count[i - 1];
    }
    let mut next = count;
    let mut sorted = vec![(0u32, 0u32); hashed.len()];
    for &(h, p) in &hashed {
        let b = (h & 255) as usize;
        sorted[next[b]] = (h, p);
        next[b] += 1;
    }
    let mut table: Vec<(u32, u32)> = Vec::new();
    for i in 0..256 {
        let list = &sorted[count[i]..count[i + 1]];
        let slots = list.len() * 2;
        let pos = out.len() as u32;
        out[i * 8..i * 8 + 4].copy_from_slice(&pos.to_le_bytes());
        out[i * 8 + 4..i * 8 + 8].copy_from_slice(&(slots as u32).to_le_bytes());
        table.clear();
        table.resize(slots, (0, 0));
        for &(h, p) in list {
            let mut w = (h >> 8) as usize % slots;
            while table[w].1 != 0 {
                w = (w + 1) % slots;
            }
            table[w] = (h, p);
        }
        for &(h, p) in &table {
            out.extend_from_slice(&h.to_le_bytes());
            out.extend_from_slice(&p.to_le_bytes());
        }
    }
    out
}
