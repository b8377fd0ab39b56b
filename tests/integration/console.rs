//! The serial consoles the AWS proxy shows (the emulator's GetConsoleOutput is a fixed kernel log that never carries
//! dify-bootstrap's lines): by default what a healthy bootstrap prints before it needs its data volume, the
//! `DIFY-PREPARED` marker for the version in the instance's user data; `Rule::Console` sets another text for the
//! instances launched after it, shown only after a delay if asked.

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

/// What dify-bootstrap prints (through `logger`, so each line has syslog's priority and time) up to the marker.
pub fn prepared(version: &str) -> String {
    format!("<13>Nov 29 20:20:01 dify-bootstrap: installing Docker\n<13>Nov 29 20:20:41 dify-bootstrap: dify-bootstrap: DIFY-PREPARED {version}\n")
}

/// A bootstrap that gave up before it was prepared.
pub fn failed(reason: &str) -> String {
    format!("<13>Nov 29 20:20:01 dify-bootstrap: installing Docker\n<11>Nov 29 20:20:09 dify-bootstrap: dify-bootstrap: FAILED: {reason}\n")
}

/// The ids of the instances a RunInstances answer launched.
pub fn launched(answer: &str) -> Vec<String> {
    answer.split("<instanceId>").skip(1).filter_map(|rest| rest.split('<').next()).map(str::to_string).collect()
}

/// The value of query parameter `key` in a query-protocol request body.
pub fn param<'a>(request: &'a str, key: &str) -> Option<&'a str> {
    request.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// The request body asking the emulator for an instance's user data.
pub fn user_data_request(instance: &str) -> String {
    format!("Action=DescribeInstanceAttribute&Version=2016-11-15&InstanceId={instance}&Attribute=userData")
}

/// The Dify version (`DIFY_VERSION='…'`) in a DescribeInstanceAttribute answer's user data.
pub fn version_in(answer: &str) -> Option<String> {
    let encoded = answer.split("<userData>").nth(1)?.split("<value>").nth(1)?.split('<').next()?;
    let user_data = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?).ok()?;
    Some(user_data.split("DIFY_VERSION='").nth(1)?.split('\'').next()?.to_string())
}

/// A GetConsoleOutput answer in EC2's wire format; no `output` while nothing was captured yet, as EC2 answers.
pub fn answer(instance: &str, text: &str) -> Response<Full<Bytes>> {
    let output = if text.is_empty() { String::new() } else { format!("<output>{}</output>", base64::engine::general_purpose::STANDARD.encode(text)) };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><GetConsoleOutputResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>proxy</requestId><instanceId>{instance}</instanceId><timestamp>2026-11-29T20:20:00.000Z</timestamp>{output}</GetConsoleOutputResponse>"
    );
    Response::builder().status(200).header("content-type", "text/xml").body(Full::new(Bytes::from(body))).unwrap()
}

#[test]
fn consoles_and_the_answers_they_are_read_from() {
    assert_eq!(launched("<instancesSet><item><instanceId>i-1</instanceId></item><item><instanceId>i-2</instanceId></item></instancesSet>"), ["i-1", "i-2"]);
    assert_eq!(param("Action=GetConsoleOutput&InstanceId=i-9&Latest=true", "InstanceId"), Some("i-9"));
    let user_data = base64::engine::general_purpose::STANDARD.encode("#cloud-config\nDIFY_VERSION='1.14.0'\n");
    assert_eq!(version_in(&format!("<userData><value>{user_data}</value></userData>")).as_deref(), Some("1.14.0"));
    assert!(prepared("1.14.0").contains("dify-bootstrap: DIFY-PREPARED 1.14.0\n"));
}
