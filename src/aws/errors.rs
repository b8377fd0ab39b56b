//! Classifying and describing AWS errors: not-found, throttling, conflicts, and `AwsError`, which names the operation
//! and the object (`.op("EC2 DescribeVolumes", id)?`).

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The AWS error code, when the service sent one.
pub fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.code()
}

/// Whether the error says the object does not exist (EC2's `*.NotFound` / `InvalidXxxID.NotFound`, ELB's `*NotFound`,
/// Route53's `NoSuch*`, Data Lifecycle Manager's `ResourceNotFoundException`).
pub fn is_not_found<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code().map(code_is_not_found).unwrap_or(false)
}

pub fn code_is_not_found(code: &str) -> bool {
    code.ends_with(".NotFound") || code.ends_with("NotFound") || code.starts_with("NoSuch") || code == "InvalidVolume.NotFound" || code == "ResourceNotFoundException"
}

/// Whether AWS asked us to slow down (the SDK's retry policy handles these; this is for waiters and tests).
pub fn is_throttle<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code().map(code_is_throttle).unwrap_or(false)
}

pub fn code_is_throttle(code: &str) -> bool {
    matches!(code, "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException" | "RequestThrottled" | "PriorRequestNotComplete")
}

pub fn code_is_conflict(code: &str) -> bool {
    matches!(code, "DependencyViolation" | "IncorrectState" | "IncorrectInstanceState" | "ResourceInUse" | "ResourceInUseException" | "ConflictException") || code.ends_with("InUse")
}

/// "AWS message (Code)", or the transport failure, for an error detail.
pub fn describe<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(e: &SdkError<E, R>) -> String {
    match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{msg} ({code})"),
        (Some(code), None) => code.to_string(),
        _ => {
            // Transport and timeout errors: the full source chain says what happened.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

/// What kind of failure an AWS error is, for the callers that act on it (a finder turns `NotFound` into `None`, a
/// deleter retries a `Conflict`); everything else is `Other` and only reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Throttled,
    /// The object is in use or in the wrong state for the call (`DependencyViolation`, `*InUse`, `IncorrectState`).
    Conflict,
    Other,
}

impl ErrorKind {
    pub fn of_code(code: Option<&str>) -> ErrorKind {
        match code {
            Some(c) if code_is_not_found(c) => ErrorKind::NotFound,
            Some(c) if code_is_throttle(c) => ErrorKind::Throttled,
            Some(c) if code_is_conflict(c) => ErrorKind::Conflict,
            _ => ErrorKind::Other,
        }
    }
}

/// A failed AWS call, naming the operation ("EC2 DescribeVolumes") and the object it was about (empty when the call
/// names none). Shown as "EC2 DetachVolume vol-1 from i-2: AWS message (Code)", the form every error had before.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub operation: &'static str,
    pub id: String,
    pub kind: ErrorKind,
    /// The AWS error code, for the few callers that act on one code (`InvalidTarget`, `DependencyViolation`).
    pub code: Option<String>,
    pub message: String,
}

impl AwsError {
    pub fn new<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(operation: &'static str, id: impl std::fmt::Display, e: &SdkError<E, R>) -> AwsError {
        AwsError { operation, id: id.to_string(), kind: ErrorKind::of_code(e.code()), code: e.code().map(str::to_string), message: describe(e) }
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.id.is_empty() {
            write!(f, "{}: {}", self.operation, self.message)
        } else {
            write!(f, "{} {}: {}", self.operation, self.id, self.message)
        }
    }
}

impl std::error::Error for AwsError {}

/// Most callers still carry errors as text: `?` turns an `AwsError` into its message.
impl From<AwsError> for String {
    fn from(e: AwsError) -> String {
        e.to_string()
    }
}

/// The call's output, or `None` when the object was not there (a delete of something already gone, a finder).
pub fn found<T>(r: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// `.op("EC2 DescribeVolumes", id)?` on the result of an SDK call: its error as an `AwsError`.
pub trait OpExt<T> {
    fn op(self, operation: &'static str, id: impl std::fmt::Display) -> Result<T, AwsError>;
}

impl<T, E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug> OpExt<T> for Result<T, SdkError<E, R>> {
    fn op(self, operation: &'static str, id: impl std::fmt::Display) -> Result<T, AwsError> {
        self.map_err(|e| AwsError::new(operation, id, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_codes_are_recognised() {
        for c in ["InvalidVpcID.NotFound", "LoadBalancerNotFound", "NoSuchHostedZone", "InvalidVolume.NotFound", "ResourceNotFoundException"] {
            assert!(code_is_not_found(c), "{c}");
        }
        assert!(!code_is_not_found("UnauthorizedOperation"));
    }

    #[test]
    fn an_aws_error_reads_as_operation_object_and_message() {
        let e = AwsError { operation: "EC2 DetachVolume", id: "vol-1 from i-2".into(), kind: ErrorKind::of_code(Some("IncorrectState")), code: Some("IncorrectState".into()), message: "busy (IncorrectState)".into() };
        assert_eq!(e.to_string(), "EC2 DetachVolume vol-1 from i-2: busy (IncorrectState)");
        assert_eq!(e.kind, ErrorKind::Conflict);
        let e = AwsError { id: String::new(), ..e };
        assert_eq!(String::from(e), "EC2 DetachVolume: busy (IncorrectState)");
        assert_eq!(ErrorKind::of_code(Some("InvalidVolume.NotFound")), ErrorKind::NotFound);
        assert_eq!(ErrorKind::of_code(Some("RequestLimitExceeded")), ErrorKind::Throttled);
        assert_eq!(ErrorKind::of_code(None), ErrorKind::Other);
    }
}
