//! Why a record is quarantined: the error codes (the `error_code` column) and the rejection
//! that carries one with a message naming the field.

/// Why a record was quarantined; `code()` is the `error_code` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectCode {
    /// The bytes are not UTF-8.
    NotUtf8,
    /// Not parseable JSON (or a CSV row that could not be read).
    NotJson,
    /// JSON, but not an object.
    NotObject,
    /// Larger than the record size limit (`MAX_RECORD_BYTES` of validation).
    TooLarge,
    /// A required field is absent or null.
    MissingField,
    /// A field has the wrong JSON type.
    WrongType,
    /// A timestamp is not RFC 3339 with an offset, or out of range.
    BadTimestamp,
    /// A string is empty where 1–64 chars are required, or too long.
    BadLength,
    /// A value outside its type's range (integer beyond 32 bits, decimal(10,2) overflow).
    OutOfRange,
    /// A value outside its allowed set: unknown status, more than two decimals, interval ≤ 0.
    InvalidValue,
    /// A CSV row whose column count differs from the header's.
    BadCsvRow,
    /// A Kafka record value that is not valid base64, or has no value.
    BadEncoding,
    /// The topic or `landing/` folder names no known dataset.
    UnknownDataset,
    /// The object is neither JSON lines nor CSV (by its extension).
    UnsupportedFile,
}

impl RejectCode {
    /// Every code, in declaration order.
    pub const ALL: [RejectCode; 14] = [
        RejectCode::NotUtf8,
        RejectCode::NotJson,
        RejectCode::NotObject,
        RejectCode::TooLarge,
        RejectCode::MissingField,
        RejectCode::WrongType,
        RejectCode::BadTimestamp,
        RejectCode::BadLength,
        RejectCode::OutOfRange,
        RejectCode::InvalidValue,
        RejectCode::BadCsvRow,
        RejectCode::BadEncoding,
        RejectCode::UnknownDataset,
        RejectCode::UnsupportedFile,
    ];

    /// The `error_code` text.
    pub fn code(self) -> &'static str {
        match self {
            RejectCode::NotUtf8 => "not_utf8",
            RejectCode::NotJson => "not_json",
            RejectCode::NotObject => "not_object",
            RejectCode::TooLarge => "too_large",
            RejectCode::MissingField => "missing_field",
            RejectCode::WrongType => "wrong_type",
            RejectCode::BadTimestamp => "bad_timestamp",
            RejectCode::BadLength => "bad_length",
            RejectCode::OutOfRange => "out_of_range",
            RejectCode::InvalidValue => "invalid_value",
            RejectCode::BadCsvRow => "bad_csv_row",
            RejectCode::BadEncoding => "bad_encoding",
            RejectCode::UnknownDataset => "unknown_dataset",
            RejectCode::UnsupportedFile => "unsupported_file",
        }
    }
}

/// A record that failed validation: the code and a message naming the field.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub code: RejectCode,
    pub message: String,
}

impl Rejection {
    /// A rejection with a message.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
        }
    }
}
