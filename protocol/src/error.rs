//! Kafka error codes. The broker maps its internal errors to these in one `map_*_error` function
//! per API; this module names the codes and their retriability.

pub use kafka_protocol::ResponseError as ErrorCode;

/// The wire value for "no error".
pub const NONE: i16 = 0;

/// The wire value of `code`.
pub fn code(error: ErrorCode) -> i16 {
    error.code()
}
