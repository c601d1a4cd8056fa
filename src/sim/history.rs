//! Client histories: what each client asked, when, and what it was told (DESIGN §9;
//! for users, "History files" in docs/operations.md repeats the format below).
//!
//! # Format
//! A history file is JSON lines, one operation per line, in any order (the checker
//! orders by time, not by line). Every line is an object with these fields:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `client` | u64 | who issued it; a client has at most one operation in flight |
//! | `op` | `"get"`, `"put"`, `"delete"`, `"cas"` | the operation |
//! | `key` | string | the key |
//! | `value` | string or null | put: the value written; cas: the new value (null: delete on a match); null otherwise |
//! | `expected` | string or null | cas only: the value the key must hold (null: must be absent) |
//! | `call_ns` | u64 | when the client sent it |
//! | `return_ns` | u64 or null | when the answer arrived; null: outcome unknown (timeout, lost connection) |
//! | `output` | string or null | get: the value read (null: absent); cas: the value after the call (the new value on success, the current one on failure); null for put and delete |
//! | `ok` | bool | get/put: completed; delete: the key existed; cas: it succeeded. Ignored when `return_ns` is null |
//!
//! Keys and values are UTF-8 strings (the simulator uses ASCII). Blank lines are
//! skipped. A field that does not apply may be left out; `return_ns` may not (a typo
//! there must not turn every operation into "outcome unknown"), and neither may the
//! `value` and `expected` of a cas or the `output` of a completed get or cas, because
//! null means something for them.
//!
//! # What this module must not do
//! It reads and writes histories and nothing else: no judging (that is
//! `sim::checker`), no clock, no reordering of the operations it is given.

use std::fmt;
use std::io::{self, BufRead, Write};

use serde::{Deserialize, Deserializer, Serialize};

/// The four client operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Get,
    Put,
    Delete,
    Cas,
}

impl OpKind {
    /// The name used in history files.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Put => "put",
            OpKind::Delete => "delete",
            OpKind::Cas => "cas",
        }
    }

    fn from_name(name: &str) -> Option<OpKind> {
        match name {
            "get" => Some(OpKind::Get),
            "put" => Some(OpKind::Put),
            "delete" => Some(OpKind::Delete),
            "cas" => Some(OpKind::Cas),
            _ => None,
        }
    }
}

/// One client operation as the client saw it. Field meanings are in the module doc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub client: u64,
    pub op: OpKind,
    pub key: String,
    pub value: Option<String>,
    pub expected: Option<String>,
    pub call_ns: u64,
    pub return_ns: Option<u64>,
    pub output: Option<String>,
    pub ok: bool,
}

impl Operation {
    /// True when the client got an answer, so its output and `ok` must be explained.
    pub fn completed(&self) -> bool {
        self.return_ns.is_some()
    }
}

/// Shows a value the way explanations print it: quoted, or `absent` for none.
struct Shown<'a>(&'a Option<String>);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(value) => write!(formatter, "{value:?}"),
            None => formatter.write_str("absent"),
        }
    }
}

/// One line per operation, for explanations: `client 3: get → "1" [called 5 ns, returned 9 ns]`.
impl fmt::Display for Operation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "client {}: ", self.client)?;
        let known = self.completed();
        match (self.op, known) {
            (OpKind::Get, true) => write!(formatter, "get → {}", Shown(&self.output))?,
            (OpKind::Get, false) => formatter.write_str("get → ?")?,
            (OpKind::Put, _) => write!(formatter, "put {}", Shown(&self.value))?,
            (OpKind::Delete, true) if self.ok => formatter.write_str("delete → existed")?,
            (OpKind::Delete, true) => formatter.write_str("delete → was absent")?,
            (OpKind::Delete, false) => formatter.write_str("delete → ?")?,
            (OpKind::Cas, _) => {
                let new = match &self.value {
                    Some(value) => format!("{value:?}"),
                    None => "(delete)".to_string(),
                };
                write!(formatter, "cas {} → {new}", Shown(&self.expected))?;
                match (known, self.ok) {
                    (false, _) => formatter.write_str(": outcome unknown")?,
                    (true, true) => formatter.write_str(": succeeded")?,
                    (true, false) => write!(formatter, ": failed, value {}", Shown(&self.output))?,
                }
            }
        }
        match self.return_ns {
            Some(return_ns) => {
                write!(formatter, " [called {} ns, returned {return_ns} ns]", self.call_ns)
            }
            None => write!(formatter, " [called {} ns, outcome unknown]", self.call_ns),
        }
    }
}

/// Why a history could not be read. Lines are numbered from 1.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot read history line {line}")]
    Read {
        line: usize,
        #[source]
        source: io::Error,
    },
    #[error("history line {line}: {reason}")]
    Invalid { line: usize, reason: String },
}

impl HistoryError {
    /// The line the problem is on.
    pub fn line(&self) -> usize {
        match self {
            HistoryError::Read { line, .. } | HistoryError::Invalid { line, .. } => *line,
        }
    }
}

/// Writes one JSON object per line, every field present, in the order given.
pub fn write_jsonl(ops: &[Operation], out: &mut impl Write) -> io::Result<()> {
    for operation in ops {
        serde_json::to_writer(&mut *out, operation)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Reads a history, validating every line; the first bad line is the error.
pub fn read_jsonl(input: impl BufRead) -> Result<Vec<Operation>, HistoryError> {
    let mut operations = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let number = index + 1;
        let text = line.map_err(|source| HistoryError::Read { line: number, source })?;
        if text.trim().is_empty() {
            continue;
        }
        let operation =
            parse_line(&text).map_err(|reason| HistoryError::Invalid { line: number, reason })?;
        operations.push(operation);
    }
    Ok(operations)
}

/// A line as written, before validation. A double `Option` tells a missing field
/// (`None`) from an explicit null (`Some(None)`), which matters for cas and outputs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperation {
    client: u64,
    op: String,
    key: String,
    #[serde(default, deserialize_with = "present")]
    value: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    expected: Option<Option<String>>,
    call_ns: u64,
    #[serde(default, deserialize_with = "present")]
    return_ns: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    output: Option<Option<String>>,
    ok: bool,
}

/// Called only for fields that appear, so `Some` marks presence even for a null.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

fn parse_line(text: &str) -> Result<Operation, String> {
    let raw: RawOperation = serde_json::from_str(text).map_err(|error| json_reason(&error))?;
    let op = OpKind::from_name(&raw.op)
        .ok_or_else(|| format!("unknown op `{}` (expected get, put, delete or cas)", raw.op))?;
    let return_ns = raw
        .return_ns
        .ok_or("missing field `return_ns` (write null when the outcome is unknown)")?;
    if let Some(return_ns) = return_ns {
        if return_ns < raw.call_ns {
            return Err(format!("return_ns {return_ns} is before call_ns {}", raw.call_ns));
        }
    }
    check_fields(op, &raw, return_ns.is_some())?;
    Ok(Operation {
        client: raw.client,
        op,
        key: raw.key,
        value: raw.value.flatten(),
        expected: raw.expected.flatten(),
        call_ns: raw.call_ns,
        return_ns,
        output: raw.output.flatten(),
        ok: raw.ok,
    })
}

/// Checks that `value`, `expected` and `output` are present or null as `op` requires.
fn check_fields(op: OpKind, raw: &RawOperation, completed: bool) -> Result<(), String> {
    let name = op.name();
    let is_set = |field: &Option<Option<String>>| matches!(field, Some(Some(_)));
    if op != OpKind::Cas && is_set(&raw.expected) {
        return Err(format!("`expected` is only for cas, not {name}"));
    }
    match op {
        OpKind::Get | OpKind::Delete if is_set(&raw.value) => {
            return Err(format!("`value` is only for put and cas, not {name}"));
        }
        OpKind::Put if !is_set(&raw.value) => {
            return Err("put needs a string `value`".to_string());
        }
        OpKind::Cas if raw.value.is_none() => {
            return Err(
                "cas needs a `value` field (the new value; null deletes on a match)".to_string()
            );
        }
        OpKind::Cas if raw.expected.is_none() => {
            return Err("cas needs an `expected` field (null: the key must be absent)".to_string());
        }
        _ => {}
    }
    match op {
        OpKind::Put | OpKind::Delete if is_set(&raw.output) => {
            Err(format!("`output` must be null for {name}"))
        }
        OpKind::Get | OpKind::Cas if completed && raw.output.is_none() => {
            Err(format!("a completed {name} needs an `output` field (null: the key was absent)"))
        }
        _ => Ok(()),
    }
}

/// serde_json positions errors within the line, which is always line 1 here; keep
/// only the column so the message does not contradict the file's line number.
fn json_reason(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&position) {
        Some(bare) => format!("{bare} (column {})", error.column()),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(client: u64, key: &str, value: &str, call_ns: u64, return_ns: u64) -> Operation {
        Operation {
            client,
            op: OpKind::Put,
            key: key.to_string(),
            value: Some(value.to_string()),
            expected: None,
            call_ns,
            return_ns: Some(return_ns),
            output: None,
            ok: true,
        }
    }

    fn read(text: &str) -> Result<Vec<Operation>, HistoryError> {
        read_jsonl(text.as_bytes())
    }

    #[test]
    fn written_history_reads_back_identical() {
        let cas = Operation {
            client: 2,
            op: OpKind::Cas,
            key: "k".to_string(),
            value: None,
            expected: Some("v".to_string()),
            call_ns: 5,
            return_ns: None,
            output: None,
            ok: false,
        };
        let history = vec![put(1, "k", "v", 1, 4), cas];
        let mut bytes = Vec::new();
        write_jsonl(&history, &mut bytes).expect("write to a Vec");
        let text = String::from_utf8(bytes).expect("utf-8");
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("\"op\":\"cas\""), "{text}");
        assert_eq!(read(&text).expect("reads back"), history);
    }

    #[test]
    fn blank_lines_are_skipped_and_errors_count_them() {
        let good = r#"{"client":1,"op":"get","key":"k","call_ns":1,"return_ns":2,"output":null,"ok":true}"#;
        let bad = r#"{"client":1,"op":"get","key":"k","call_ns":3,"return_ns":2,"output":null,"ok":true}"#;
        let error = read(&format!("{good}\n\n{bad}\n")).expect_err("return before call");
        assert_eq!(error.line(), 3);
        assert_eq!(error.to_string(), "history line 3: return_ns 2 is before call_ns 3");
    }

    #[test]
    fn unknown_op_names_are_rejected_with_the_name() {
        let line = r#"{"client":1,"op":"incr","key":"k","call_ns":1,"return_ns":2,"ok":true}"#;
        let error = read(line).expect_err("unknown op").to_string();
        assert!(error.contains("line 1: unknown op `incr`"), "{error}");
    }

    #[test]
    fn cas_must_spell_out_expected_and_value() {
        let no_expected = r#"{"client":1,"op":"cas","key":"k","value":"b","call_ns":1,"return_ns":2,"output":"b","ok":true}"#;
        let error = read(no_expected).expect_err("missing expected").to_string();
        assert!(error.contains("cas needs an `expected` field"), "{error}");
        let no_value = r#"{"client":1,"op":"cas","key":"k","expected":null,"call_ns":1,"return_ns":2,"output":"b","ok":true}"#;
        let error = read(no_value).expect_err("missing value").to_string();
        assert!(error.contains("cas needs a `value` field"), "{error}");
        let both_null = r#"{"client":1,"op":"cas","key":"k","expected":null,"value":null,"call_ns":1,"return_ns":2,"output":null,"ok":true}"#;
        assert_eq!(read(both_null).expect("valid").len(), 1);
    }

    #[test]
    fn missing_return_ns_is_an_error_not_an_unknown_outcome() {
        let line = r#"{"client":1,"op":"put","key":"k","value":"v","call_ns":1,"ok":true}"#;
        let error = read(line).expect_err("no return_ns").to_string();
        assert!(error.contains("missing field `return_ns`"), "{error}");
    }

    #[test]
    fn malformed_json_names_the_line_and_column() {
        let error = read("\n{\"client\":1,").expect_err("truncated").to_string();
        assert!(error.starts_with("history line 2: "), "{error}");
        assert!(error.contains("(column"), "{error}");
    }

    #[test]
    fn misspelled_fields_are_rejected() {
        let line = r#"{"client":1,"op":"put","key":"k","value":"v","call_ns":1,"retrun_ns":2,"return_ns":2,"ok":true}"#;
        let error = read(line).expect_err("unknown field").to_string();
        assert!(error.contains("unknown field `retrun_ns`"), "{error}");
    }

    #[test]
    fn operations_display_their_outcome() {
        assert_eq!(
            put(3, "k", "1", 5, 9).to_string(),
            "client 3: put \"1\" [called 5 ns, returned 9 ns]"
        );
    }
}
