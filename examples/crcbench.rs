fn main() {
    let buf = vec![0x5au8; 8 << 20];
    let t = std::time::Instant::now();
    let mut h = crc32fast::Hasher::new();
    for _ in 0..256 {
        h.update(&buf);
    }
    let s = t.elapsed().as_secs_f64();
    println!("crc32fast {:.2} GB/s {}", 2.147 / s, h.finalize());
    let mut v = Vec::with_capacity(buf.len());
    let t = std::time::Instant::now();
    for _ in 0..256 {
        v.clear();
        v.extend_from_slice(&buf);
    }
    println!(
        "memcpy {:.2} GB/s {}",
        2.147 / t.elapsed().as_secs_f64(),
        v[5]
    );
    use sha2::Digest;
    let t = std::time::Instant::now();
    let mut s2 = sha2::Sha256::new();
    for _ in 0..64 {
        s2.update(&buf);
    }
    println!(
        "sha256 {:.2} GB/s {:x}",
        0.537 / t.elapsed().as_secs_f64(),
        s2.finalize()[0]
    );
}
