use std::io::SeekFrom;
use std::path::PathBuf;

use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

const CHUNK: usize = 64 * 1024;

/// A message body: in memory up to a threshold, then in an anonymous file.
pub struct SpooledBody {
    memory: Vec<u8>,
    file: Option<File>,
    threshold: usize,
    dir: PathBuf,
    len: usize,
    /// The last two bytes written: whether the body ends in CRLF decides what relaying appends.
    tail: [u8; 2],
    read_pos: usize,
}

impl SpooledBody {
    pub fn new(dir: PathBuf, threshold: usize) -> Self {
        SpooledBody {
            memory: Vec::new(),
            file: None,
            threshold,
            dir,
            len: 0,
            tail: [0, 0],
            read_pos: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn ends_with_crlf(&self) -> bool {
        self.len >= 2 && self.tail == *b"\r\n"
    }

    /// Whether part of the body lives on disk (for tests of the memory bound).
    pub fn is_spilled(&self) -> bool {
        self.file.is_some()
    }

    /// The whole body, when it is all in memory: read without a copy.
    pub fn in_memory(&self) -> Option<&[u8]> {
        self.file.is_none().then_some(&self.memory[..])
    }

    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match bytes.len() {
            0 => return Ok(()),
            1 => self.tail = [self.tail[1], bytes[0]],
            n => self.tail = [bytes[n - 2], bytes[n - 1]],
        }
        self.len += bytes.len();
        if self.file.is_none() && self.memory.len() + bytes.len() <= self.threshold {
            self.memory.extend_from_slice(bytes);
            return Ok(());
        }
        if self.file.is_none() {
            let dir = self.dir.clone();
            let std_file = tokio::task::spawn_blocking(move || tempfile::tempfile_in(dir))
                .await
                .map_err(std::io::Error::other)??;
            let mut file = File::from_std(std_file);
            file.write_all(&self.memory).await?;
            self.memory = Vec::new();
            self.file = Some(file);
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(bytes).await?;
        }
        Ok(())
    }

    /// Starts reading the body from its first byte.
    pub async fn rewind(&mut self) -> std::io::Result<()> {
        self.read_pos = 0;
        if let Some(f) = self.file.as_mut() {
            f.flush().await?;
            f.seek(SeekFrom::Start(0)).await?;
        }
        Ok(())
    }

    /// The whole body in memory, for parsing (callers bound how many exist at once).
    pub async fn read_all(&mut self) -> std::io::Result<Vec<u8>> {
        self.rewind().await?;
        let mut all = Vec::with_capacity(self.len);
        while let Some(chunk) = self.next_chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }

    /// The next chunk of at most 64 KiB, or `None` at the end: borrowed while the body is in
    /// memory (every message is read two or three times, to hash and to relay it).
    pub async fn next_chunk(&mut self) -> std::io::Result<Option<std::borrow::Cow<'_, [u8]>>> {
        match self.file.as_mut() {
            None => {
                let start = self.read_pos;
                let end = (start + CHUNK).min(self.memory.len());
                if start >= end {
                    return Ok(None);
                }
                self.read_pos = end;
                Ok(Some(std::borrow::Cow::Borrowed(&self.memory[start..end])))
            }
            Some(f) => {
                let mut chunk = vec![0u8; CHUNK];
                let n = f.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(None);
                }
                chunk.truncate(n);
                Ok(Some(std::borrow::Cow::Owned(chunk)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spills_past_threshold_and_reads_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut body = SpooledBody::new(dir.path().to_path_buf(), 100);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        for part in data.chunks(7777) {
            body.write(part).await.unwrap();
        }
        assert!(body.is_spilled());
        assert_eq!(body.len(), data.len());
        body.rewind().await.unwrap();
        let mut back = Vec::new();
        while let Some(c) = body.next_chunk().await.unwrap() {
            back.extend_from_slice(&c);
        }
        assert_eq!(back, data);
    }

    #[tokio::test]
    async fn small_body_stays_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut body = SpooledBody::new(dir.path().to_path_buf(), 100);
        body.write(b"Subject: x\r\n\r\nhi\r\n").await.unwrap();
        assert!(!body.is_spilled());
        assert!(body.ends_with_crlf());
    }
}
