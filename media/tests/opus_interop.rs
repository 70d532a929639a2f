//! Decodes a stream produced by an independent encoder (opus-tools' `opusenc`) and compares
//! it with the independent decoder's output (`opusdec --no-dither`); see
//! fixtures/media/generate.sh.

use voxbridge_media::codec::{AudioCodec, Opus};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/media/");

/// Minimal Ogg demuxer (RFC 3533): reassembles packets from page segments.
fn ogg_packets(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut packets = vec![];
    let mut current = vec![];
    while data.len() >= 27 {
        assert_eq!(&data[..4], b"OggS", "page sync");
        let segments = usize::from(data[26]);
        let table = &data[27..27 + segments];
        let mut body = &data[27 + segments..];
        for &lace in table {
            current.extend_from_slice(&body[..usize::from(lace)]);
            body = &body[usize::from(lace)..];
            if lace < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        let page_len = 27 + segments + table.iter().map(|&l| usize::from(l)).sum::<usize>();
        data = &data[page_len..];
    }
    packets
}

#[test]
fn decodes_opusenc_output_like_opusdec() {
    let ogg = std::fs::read(format!("{FIXTURES}opus_hello.opus")).unwrap();
    let reference: Vec<i16> = std::fs::read(format!("{FIXTURES}opus_hello_ref48.raw"))
        .unwrap()
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let packets = ogg_packets(&ogg);
    assert_eq!(&packets[0][..8], b"OpusHead");
    assert_eq!(&packets[1][..8], b"OpusTags");
    let pre_skip = usize::from(u16::from_le_bytes([packets[0][10], packets[0][11]]));
    let mut codec = Opus::new(48_000, 20).unwrap();
    let mut pcm = vec![];
    let mut frame = [0i16; 5760];
    for p in &packets[2..] {
        let n = codec.decode(p, &mut frame).unwrap();
        pcm.extend_from_slice(&frame[..n]);
    }
    let ours = &pcm[pre_skip..];
    assert!(
        ours.len() >= reference.len(),
        "{} < {}",
        ours.len(),
        reference.len()
    );
    let (mut signal, mut noise, mut worst) = (0f64, 0f64, 0i32);
    for (&a, &b) in ours.iter().zip(&reference) {
        signal += f64::from(b) * f64::from(b);
        let d = i32::from(a) - i32::from(b);
        noise += f64::from(d) * f64::from(d);
        worst = worst.max(d.abs());
    }
    assert!(signal > 1e9, "reference must contain speech");
    let snr = 10.0 * (signal / noise.max(1.0)).log10();
    assert!(
        snr > 60.0 && worst <= 2,
        "snr {snr:.1} dB, worst sample diff {worst}"
    );
}
