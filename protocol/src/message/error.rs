//! The error response (kind 0x70): why a request failed and what the client should do.
//!
//! This module owns the error codes and payload layouts, decode beside encode. It must
//! not choose which error a request gets; the daemon's core does.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{put_address, put_string, truncate_at_char_boundary, Reader};
use crate::error::DecodeError;
use crate::ids::MemberId;
use crate::kind::Kind;
use crate::limits::{Limits, MAX_REASON_BYTES};
use crate::state::OrderStateOp;

/// A failed request. Each variant tells the client whether and where to retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorResponse {
    /// This radiant is not the herald of the key's order. Code 1.
    NotHerald {
        /// The herald, if this radiant knows it.
        herald: Option<MemberId>,
        /// The herald's client address (`host:port`), if known.
        address: Option<String>,
    },
    /// This radiant's order does not own the key's shard in configuration `config_num`.
    /// Code 2.
    WrongOrder {
        /// The configuration number the answering radiant used.
        config_num: u64,
    },
    /// The order is busy with `op`; retry after a back-off. Code 3.
    Locked(OrderStateOp),
    /// The request cannot be served now (no majority, shutting down, …). Code 4.
    Unavailable {
        /// What is unavailable, for people; at most `MAX_REASON_BYTES`.
        reason: String,
    },
    /// The request is malformed or violates a limit; retrying it unchanged fails again.
    /// Code 5.
    BadRequest {
        /// What is wrong, for people; at most `MAX_REASON_BYTES`.
        reason: String,
    },
    /// The request was accepted (a write appended to the log, an admin change proposed)
    /// but the radiant can no longer learn whether it took effect: it may or may not
    /// have. Only requests a blind retry could apply twice get it (no session); the
    /// client must read the state before deciding to retry. Code 6.
    OutcomeUnknown {
        /// What happened, for people; at most `MAX_REASON_BYTES`.
        reason: String,
    },
    /// The connection has not presented the token this request needs (`Authenticate`);
    /// retrying without it fails again. Code 7.
    Unauthorized {
        /// Which token is missing and how to present it; at most `MAX_REASON_BYTES`.
        reason: String,
    },
}

const CODE_NOT_HERALD: u8 = 1;
const CODE_WRONG_ORDER: u8 = 2;
const CODE_LOCKED: u8 = 3;
const CODE_UNAVAILABLE: u8 = 4;
const CODE_BAD_REQUEST: u8 = 5;
const CODE_OUTCOME_UNKNOWN: u8 = 6;
const CODE_UNAUTHORIZED: u8 = 7;

const REASON_TOO_LONG: &str = "longer than MAX_REASON_BYTES (1024)";

// ===== impl ErrorResponse =====

impl ErrorResponse {
    /// A `BadRequest` whose reason is the decode error's sentence, cut to
    /// `MAX_REASON_BYTES`: what a server sends for `UnknownKind` and message-level errors.
    pub fn bad_request(error: &DecodeError) -> ErrorResponse {
        let reason = error.to_string();
        let reason = truncate_at_char_boundary(&reason, MAX_REASON_BYTES).to_owned();
        ErrorResponse::BadRequest { reason }
    }
    /// The error's name in snake case (`not_herald`, `unavailable`, …), as metrics label
    /// it.
    pub fn name(&self) -> &'static str {
        match self {
            ErrorResponse::NotHerald { .. } => "not_herald",
            ErrorResponse::WrongOrder { .. } => "wrong_order",
            ErrorResponse::Locked(_) => "locked",
            ErrorResponse::Unavailable { .. } => "unavailable",
            ErrorResponse::BadRequest { .. } => "bad_request",
            ErrorResponse::OutcomeUnknown { .. } => "outcome_unknown",
            ErrorResponse::Unauthorized { .. } => "unauthorized",
        }
    }

    /// The frame kind, always `Kind::Error`.
    pub fn kind(&self) -> Kind {
        Kind::Error
    }

    /// Decodes the payload of an `Error` frame, consuming it exactly.
    pub fn decode(kind: Kind, payload: Bytes, _limits: &Limits) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(payload, Some(kind));
        if kind != Kind::Error {
            return Err(reader.invalid("kind", "not an error kind"));
        }
        let response = match reader.read_u8("code")? {
            CODE_NOT_HERALD => {
                let herald = MemberId::new(reader.read_u64("herald")?);
                let address = if reader.read_presence("address")? {
                    Some(reader.read_address("address")?)
                } else {
                    None
                };
                ErrorResponse::NotHerald { herald, address }
            }
            CODE_WRONG_ORDER => {
                ErrorResponse::WrongOrder { config_num: reader.read_u64("config_num")? }
            }
            CODE_LOCKED => {
                let code = reader.read_u8("op")?;
                let op = OrderStateOp::from_u8(code)
                    .ok_or_else(|| reader.invalid("op", "unknown order state operation"))?;
                ErrorResponse::Locked(op)
            }
            CODE_UNAVAILABLE => ErrorResponse::Unavailable {
                reason: reader.read_string("reason", MAX_REASON_BYTES, REASON_TOO_LONG)?,
            },
            CODE_BAD_REQUEST => ErrorResponse::BadRequest {
                reason: reader.read_string("reason", MAX_REASON_BYTES, REASON_TOO_LONG)?,
            },
            CODE_OUTCOME_UNKNOWN => ErrorResponse::OutcomeUnknown {
                reason: reader.read_string("reason", MAX_REASON_BYTES, REASON_TOO_LONG)?,
            },
            CODE_UNAUTHORIZED => ErrorResponse::Unauthorized {
                reason: reader.read_string("reason", MAX_REASON_BYTES, REASON_TOO_LONG)?,
            },
            _ => return Err(reader.invalid("code", "unknown error code")),
        };
        reader.finish()?;
        Ok(response)
    }

    /// Appends the payload to `dst`. Strings longer than their limit are cut at a
    /// character boundary, so the result always decodes.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            ErrorResponse::NotHerald { herald, address } => {
                dst.put_u8(CODE_NOT_HERALD);
                dst.put_u64(MemberId::to_wire(*herald));
                match address {
                    Some(address) => {
                        dst.put_u8(1);
                        put_address(dst, address);
                    }
                    None => dst.put_u8(0),
                }
            }
            ErrorResponse::WrongOrder { config_num } => {
                dst.put_u8(CODE_WRONG_ORDER);
                dst.put_u64(*config_num);
            }
            ErrorResponse::Locked(op) => {
                dst.put_u8(CODE_LOCKED);
                dst.put_u8(*op as u8);
            }
            ErrorResponse::Unavailable { reason } => {
                dst.put_u8(CODE_UNAVAILABLE);
                put_string(dst, reason, MAX_REASON_BYTES);
            }
            ErrorResponse::BadRequest { reason } => {
                dst.put_u8(CODE_BAD_REQUEST);
                put_string(dst, reason, MAX_REASON_BYTES);
            }
            ErrorResponse::OutcomeUnknown { reason } => {
                dst.put_u8(CODE_OUTCOME_UNKNOWN);
                put_string(dst, reason, MAX_REASON_BYTES);
            }
            ErrorResponse::Unauthorized { reason } => {
                dst.put_u8(CODE_UNAUTHORIZED);
                put_string(dst, reason, MAX_REASON_BYTES);
            }
        }
    }
}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorResponse::NotHerald { herald: Some(herald), address: Some(address) } => write!(
                f,
                "this radiant is not the herald of the key's order: retry at herald {herald} \
                 ({address})"
            ),
            ErrorResponse::NotHerald { herald: Some(herald), address: None } => write!(
                f,
                "this radiant is not the herald of the key's order: retry at herald {herald}"
            ),
            ErrorResponse::NotHerald { herald: None, .. } => f.write_str(
                "this radiant is not the herald of the key's order and knows no herald: \
                 retry after a short back-off, or at another member",
            ),
            ErrorResponse::WrongOrder { config_num } => write!(
                f,
                "this order does not own the key in configuration {config_num}: refresh the \
                 configuration and retry at the owning order"
            ),
            ErrorResponse::Locked(op) => {
                write!(f, "order is LOCKED({op}): retry after a short back-off")
            }
            ErrorResponse::Unavailable { reason } => {
                write!(f, "unavailable: {reason}; retry after a back-off")
            }
            ErrorResponse::BadRequest { reason } => write!(
                f,
                "bad request: {reason}; fix the request, retrying it unchanged fails again"
            ),
            ErrorResponse::OutcomeUnknown { reason } => write!(
                f,
                "outcome unknown: {reason}; the request may or may not have taken effect, so \
                 read the current state before retrying it"
            ),
            ErrorResponse::Unauthorized { reason } => write!(f, "unauthorized: {reason}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn round_trip(response: &ErrorResponse) -> Result<ErrorResponse, DecodeError> {
        let mut dst = BytesMut::new();
        response.encode(&mut dst);
        ErrorResponse::decode(Kind::Error, dst.freeze(), &Limits::DEFAULT)
    }

    #[test]
    fn locked_display_names_the_operation_and_the_remedy() {
        let text = ErrorResponse::Locked(OrderStateOp::Replicating).to_string();
        assert_eq!(text, "order is LOCKED(REPLICATING): retry after a short back-off");
    }

    #[test]
    fn not_herald_layout_is_code_herald_address() {
        let response =
            ErrorResponse::NotHerald { herald: MemberId::new(3), address: Some("h:1".to_owned()) };
        let mut dst = BytesMut::new();
        response.encode(&mut dst);
        assert_eq!(dst.as_ref(), [1, 0, 0, 0, 0, 0, 0, 0, 3, 1, 0, 3, b'h', b':', b'1'].as_slice());
        assert_eq!(round_trip(&response), Ok(response));
    }

    #[test]
    fn rejects_unknown_error_code() {
        let error = ErrorResponse::decode(Kind::Error, Bytes::from_static(&[8]), &Limits::DEFAULT);
        assert!(matches!(error, Err(DecodeError::InvalidField { field: "code", .. })));
    }

    #[test]
    fn outcome_unknown_layout_is_code_reason() {
        let response = ErrorResponse::OutcomeUnknown { reason: "lost".to_owned() };
        let mut dst = BytesMut::new();
        response.encode(&mut dst);
        assert_eq!(dst.as_ref(), [6, 0, 4, b'l', b'o', b's', b't'].as_slice());
        assert_eq!(round_trip(&response), Ok(response));
    }

    #[test]
    fn rejects_reason_longer_than_max_reason_bytes() {
        let mut dst = BytesMut::new();
        dst.put_u8(CODE_BAD_REQUEST);
        dst.put_u16(1025);
        dst.put_slice(&[b'a'; 1025]);
        let error = ErrorResponse::decode(Kind::Error, dst.freeze(), &Limits::DEFAULT);
        assert!(matches!(error, Err(DecodeError::InvalidField { field: "reason", .. })));
    }

    #[test]
    fn encode_cuts_an_over_long_reason_so_it_still_decodes() {
        let response = ErrorResponse::Unavailable { reason: "é".repeat(600) };
        let decoded = round_trip(&response).unwrap();
        let ErrorResponse::Unavailable { reason } = decoded else { unreachable!() };
        assert_eq!(reason.len(), MAX_REASON_BYTES);
    }

    #[test]
    fn bad_request_carries_the_decode_error_sentence() {
        let response = ErrorResponse::bad_request(&DecodeError::EmptyKey);
        assert_eq!(
            response,
            ErrorResponse::BadRequest {
                reason: "key is empty; keys must be at least 1 byte".into()
            }
        );
    }
}
