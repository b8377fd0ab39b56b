//! Classifying and describing AWS errors: not-found, throttling, and messages that name the operation and object.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The AWS error code, when the service sent one.
pub fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.code()
}

/// Whether the error says the object does not exist (EC2's `*.NotFound` / `InvalidXxxID.NotFound`, ELB's `*NotFound`,
/// Route53's `NoSuch*`).
pub fn is_not_found<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code().map(code_is_not_found).unwrap_or(false)
}

pub fn code_is_not_found(code: &str) -> bool {
    code.ends_with(".NotFound") || code.ends_with("NotFound") || code.starts_with("NoSuch") || code == "InvalidVolume.NotFound"
}

/// Whether AWS asked us to slow down (the SDK's retry policy handles these; this is for waiters and tests).
pub fn is_throttle<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(e.code(), Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException" | "RequestThrottled" | "PriorRequestNotComplete"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_codes_are_recognised() {
        for c in ["InvalidVpcID.NotFound", "LoadBalancerNotFound", "NoSuchHostedZone", "InvalidVolume.NotFound"] {
            assert!(code_is_not_found(c), "{c}");
        }
        assert!(!code_is_not_found("UnauthorizedOperation"));
    }
}
