//! The Dify boot configuration: the boot script (a real file, `boot.sh`) rendered into EC2 user data.

/// The script, with `{{PLACEHOLDERS}}`.
pub const BOOT_SCRIPT: &str = include_str!("boot.sh");

/// The Dify release used when the stack does not name one.
pub const DEFAULT_DIFY_VERSION: &str = "1.13.3";

pub struct BootParams<'a> {
    pub dify_version: &'a str,
    /// The EBS volume this instance mounts at /opt/dify-data, if any.
    pub data_volume_id: Option<&'a str>,
}

/// Renders the user data for one instance. Values are checked by the schema (a version tag, a volume id), and
/// quoted in the script, so nothing here can inject shell.
pub fn render(p: &BootParams) -> String {
    BOOT_SCRIPT.replace("{{DIFY_VERSION}}", p.dify_version).replace("{{DATA_VOLUME_ID}}", p.data_volume_id.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_placeholder_and_never_formats_a_device_with_data() {
        let s = render(&BootParams { dify_version: "1.13.3", data_volume_id: Some("vol-0abc") });
        assert!(!s.contains("{{"), "unrendered placeholder");
        assert!(s.contains("DATA_VOLUME_ID=\"vol-0abc\"") && s.contains("--branch \"$DIFY_VERSION\""));
        let format_line = s.lines().position(|l| l.contains("mkfs.ext4")).unwrap();
        let guard_line = s.lines().position(|l| l.contains("if ! blkid -p")).unwrap();
        assert!(guard_line < format_line, "mkfs only inside the blank-device guard");
        assert!(s.contains("nofail"));
    }
}
