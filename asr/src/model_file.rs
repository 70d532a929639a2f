//! Structural check of a whisper.cpp ggml model file before handing it to whisper.cpp.
//!
//! whisper.cpp reads the file without bounds checks, so a truncated or foreign file can crash
//! the process instead of returning an error. Walking the headers first turns that into a
//! clear start-up error.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::AsrError;

const GGML_MAGIC: u32 = 0x6767_6d6c;
const N_HPARAMS: usize = 11;
/// Sanity bounds: no whisper model has more than this many tensors, vocabulary tokens or dims.
const MAX_TENSORS: usize = 4096;
const MAX_TOKENS: u32 = 1 << 20;
const MAX_NAME: u32 = 1024;

struct Reader<R> {
    inner: R,
    len: u64,
}

impl<R: Read + Seek> Reader<R> {
    fn i32(&mut self) -> Result<i32, String> {
        let mut b = [0u8; 4];
        self.inner
            .read_exact(&mut b)
            .map_err(|_| "file ends inside a header".to_string())?;
        Ok(i32::from_le_bytes(b))
    }

    fn count(&mut self, what: &str, max: u32) -> Result<u32, String> {
        let v = self.i32()?;
        u32::try_from(v)
            .ok()
            .filter(|&v| v <= max)
            .ok_or_else(|| format!("implausible {what}: {v}"))
    }

    fn skip(&mut self, bytes: u64) -> Result<(), String> {
        let pos = self.inner.stream_position().map_err(|e| e.to_string())?;
        let end = pos
            .checked_add(bytes)
            .filter(|&end| end <= self.len)
            .ok_or_else(|| "file is truncated".to_string())?;
        self.inner
            .seek(SeekFrom::Start(end))
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn at_end(&mut self) -> Result<bool, String> {
        Ok(self.inner.stream_position().map_err(|e| e.to_string())? == self.len)
    }
}

/// Checks magic, hyper-parameters, filterbank, vocabulary and every tensor header against the
/// file size. Returns the number of tensors.
pub fn check_model_file(path: &Path) -> Result<usize, AsrError> {
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => AsrError::ModelMissing {
            path: path.to_path_buf(),
        },
        _ => AsrError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    let len = file
        .metadata()
        .map_err(|e| AsrError::Io {
            path: path.to_path_buf(),
            source: e,
        })?
        .len();
    let mut r = Reader {
        inner: BufReader::new(file),
        len,
    };
    walk(&mut r).map_err(|reason| AsrError::ModelInvalid {
        path: path.to_path_buf(),
        reason,
    })
}

/// Values per block and bytes per block of the ggml tensor types whisper.cpp loads.
fn block_layout(ttype: i32) -> Option<(u64, u64)> {
    Some(match ttype {
        0 => (1, 4),   // f32
        1 => (1, 2),   // f16
        2 => (32, 18), // q4_0
        3 => (32, 20), // q4_1
        6 => (32, 22), // q5_0
        7 => (32, 24), // q5_1
        8 => (32, 34), // q8_0
        _ => return None,
    })
}

fn walk<R: Read + Seek>(r: &mut Reader<R>) -> Result<usize, String> {
    if r.i32()? as u32 != GGML_MAGIC {
        return Err("bad magic: not a ggml whisper model".into());
    }
    for _ in 0..N_HPARAMS {
        r.i32()?;
    }
    let n_mel = r.count("mel bands", 512)?;
    let n_fft = r.count("fft bins", 4096)?;
    r.skip(u64::from(n_mel) * u64::from(n_fft) * 4)?;
    let n_tokens = r.count("vocabulary size", MAX_TOKENS)?;
    for _ in 0..n_tokens {
        let len = r.count("token length", MAX_NAME)?;
        r.skip(u64::from(len))?;
    }
    let mut tensors = 0;
    while !r.at_end()? {
        let n_dims = r.count("tensor rank", 4)?;
        let name_len = r.count("tensor name length", MAX_NAME)?;
        let ttype = r.i32()?;
        let (block, block_bytes) =
            block_layout(ttype).ok_or_else(|| format!("unsupported tensor type {ttype}"))?;
        let mut elems = 1u64;
        for _ in 0..n_dims {
            elems = elems.saturating_mul(u64::from(r.count("tensor dimension", 1 << 24)?));
        }
        if elems % block != 0 {
            return Err(format!("{elems} values do not fill blocks of {block}"));
        }
        r.skip(u64::from(name_len))?;
        r.skip((elems / block).saturating_mul(block_bytes))?;
        tensors += 1;
        if tensors > MAX_TENSORS {
            return Err("too many tensors".into());
        }
    }
    if tensors == 0 {
        return Err("no tensors".into());
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn header(tensor_bytes: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&GGML_MAGIC.to_le_bytes());
        v.extend(std::iter::repeat_n(0u8, N_HPARAMS * 4));
        v.extend_from_slice(&1i32.to_le_bytes()); // n_mel
        v.extend_from_slice(&1i32.to_le_bytes()); // n_fft
        v.extend_from_slice(&0f32.to_le_bytes());
        v.extend_from_slice(&1i32.to_le_bytes()); // one token
        v.extend_from_slice(&1i32.to_le_bytes());
        v.push(b'a');
        v.extend_from_slice(tensor_bytes);
        v
    }

    fn tensor(dim: i32, data_len: usize) -> Vec<u8> {
        typed_tensor(0, dim, data_len)
    }

    fn typed_tensor(ttype: i32, dim: i32, data_len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [1i32, 1, ttype, dim] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.push(b'w');
        v.extend(std::iter::repeat_n(0u8, data_len));
        v
    }

    fn check(bytes: Vec<u8>) -> Result<usize, String> {
        let len = bytes.len() as u64;
        walk(&mut Reader {
            inner: Cursor::new(bytes),
            len,
        })
    }

    #[test]
    fn accepts_a_well_formed_file() {
        assert_eq!(check(header(&tensor(3, 12))), Ok(1));
    }

    #[test]
    fn sizes_quantized_tensors_by_block() {
        // q8_0: 64 values are 2 blocks of 34 bytes.
        assert_eq!(check(header(&typed_tensor(8, 64, 68))), Ok(1));
        assert!(check(header(&typed_tensor(8, 64, 67)))
            .unwrap_err()
            .contains("truncated"));
        assert!(check(header(&typed_tensor(8, 40, 68)))
            .unwrap_err()
            .contains("blocks of 32"));
        assert!(check(header(&typed_tensor(99, 1, 4)))
            .unwrap_err()
            .contains("unsupported tensor type 99"));
    }

    #[test]
    fn rejects_truncated_data_and_bad_magic() {
        assert!(check(header(&tensor(3, 11)))
            .unwrap_err()
            .contains("truncated"));
        let mut bad = header(&tensor(3, 12));
        bad[0] = 0;
        assert!(check(bad).unwrap_err().contains("magic"));
        assert_eq!(check(header(&[])), Err("no tensors".into()));
    }
}
