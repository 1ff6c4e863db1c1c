//! `sluis audit verify`: walks the chain and names the first record that does not fit.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{GENESIS, head_path, line_hash};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Intact {
        records: u64,
    },
    /// The first record that does not fit: its file, line, sequence number (as it claims, or
    /// where none can be read, the one expected there) and why.
    Broken {
        file: String,
        line: usize,
        seq: u64,
        why: String,
    },
}

#[derive(Debug, Clone)]
pub struct Report {
    pub verdict: Verdict,
    /// Facts worth knowing that are not damage (a chain continuing from an earlier file).
    pub notes: Vec<String>,
}

/// Verifies `files` as one chain, oldest first (rotated files, then the current one).
pub fn verify_files(files: &[PathBuf]) -> Report {
    let mut notes = Vec::new();
    let mut prev: Option<(u64, String)> = None;
    let mut records = 0u64;
    for file in files {
        let name = file.display().to_string();
        let broken = |line: usize, seq: u64, why: String| Report {
            verdict: Verdict::Broken {
                file: name.clone(),
                line,
                seq,
                why,
            },
            notes: Vec::new(),
        };
        let data = match std::fs::read(file) {
            Ok(d) => d,
            Err(e) => return broken(0, prev.as_ref().map_or(0, |p| p.0 + 1), e.to_string()),
        };
        let ends_clean = data.is_empty() || data.last() == Some(&b'\n');
        let text = data.strip_suffix(b"\n").unwrap_or(&data);
        let lines: Vec<&[u8]> = if text.is_empty() {
            Vec::new()
        } else {
            text.split(|b| *b == b'\n').collect()
        };
        for (i, line) in lines.iter().enumerate() {
            let expected_seq = prev.as_ref().map_or(0, |p| p.0 + 1);
            let last_and_cut = i + 1 == lines.len() && !ends_clean;
            let record: Value = match serde_json::from_slice(line) {
                Ok(v) if !last_and_cut => v,
                _ => {
                    return broken(
                        i + 1,
                        expected_seq,
                        if last_and_cut {
                            "truncated: the last record is incomplete".into()
                        } else {
                            "not a JSON record".into()
                        },
                    );
                }
            };
            let seq = record.get("seq").and_then(Value::as_u64);
            let link = record.get("prev").and_then(Value::as_str).unwrap_or("");
            match &prev {
                None => {
                    if link == GENESIS && seq == Some(0) {
                    } else if let Some(s) = seq {
                        notes.push(format!(
                            "{name} continues a chain from an earlier file (first record seq {s}); \
                             give the rotated files too, oldest first, to check that link"
                        ));
                    } else {
                        return broken(i + 1, 0, "no seq".into());
                    }
                }
                Some((pseq, phash)) => {
                    if link != phash {
                        return broken(
                            i + 1,
                            seq.unwrap_or(pseq + 1),
                            format!(
                                "it does not link to the record before it (seq {pseq}): that \
                                 record was edited, or records were deleted or moved here"
                            ),
                        );
                    }
                    if seq != Some(pseq + 1) {
                        return broken(
                            i + 1,
                            pseq + 1,
                            format!("seq {seq:?} where {} was expected", pseq + 1),
                        );
                    }
                }
            }
            prev = Some((seq.unwrap_or(0), line_hash(line)));
            records += 1;
        }
    }
    if let Some(last) = files.last()
        && let Some(problem) = check_head(last, prev.as_ref())
    {
        return Report {
            verdict: Verdict::Broken {
                file: last.display().to_string(),
                line: 0,
                seq: prev.as_ref().map_or(0, |p| p.0 + 1),
                why: problem,
            },
            notes,
        };
    }
    Report {
        verdict: Verdict::Intact { records },
        notes,
    }
}

/// Whether `file` is a rotated part of the chain (`<stem>-<time>-<seq:012>.jsonl`), which has
/// no head of its own.
pub(super) fn is_rotated(file: &Path) -> bool {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(stem) = name.strip_suffix(".jsonl") else {
        return false;
    };
    stem.len() > 13
        && stem.as_bytes()[stem.len() - 13] == b'-'
        && stem[stem.len() - 12..].bytes().all(|b| b.is_ascii_digit())
}

/// The head file names the newest record written; the log must reach it. A log with records
/// and no readable head has lost it: without the head, records cut off the end would go
/// unnoticed, so that is damage too.
fn check_head(file: &Path, last: Option<&(u64, String)>) -> Option<String> {
    let path = head_path(file);
    let head: Option<Value> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let head = match head {
        Some(h) => h,
        None if last.is_none() || is_rotated(file) => return None,
        None => {
            return Some(format!(
                "the head file {} is missing or unreadable, so records cut off the end of the \
                 log could not be noticed: it was deleted or damaged (restore it from a \
                 backup, or investigate)",
                path.display()
            ));
        }
    };
    let hseq = head.get("seq")?.as_u64()?;
    let hhash = head.get("hash")?.as_str()?;
    match last {
        None => Some(format!(
            "truncated: the file is empty but record {hseq} was written"
        )),
        Some((seq, _)) if *seq < hseq => Some(format!(
            "truncated: the log ends at record {seq}, but records up to {hseq} were written"
        )),
        Some((seq, hash)) if *seq == hseq && hash != hhash => Some(format!(
            "record {seq} is not the one written last (its hash differs from the head's)"
        )),
        _ => None,
    }
}

/// The log and its rotated predecessors (`<stem>-<time>-<seq>.jsonl`), oldest first.
pub fn chain_files(current: &Path) -> Vec<PathBuf> {
    let stem = current
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = current
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name.starts_with(&format!("{stem}-")) && name.ends_with(".jsonl")
        })
        .collect();
    rotated.sort();
    rotated.push(current.to_path_buf());
    rotated
}
