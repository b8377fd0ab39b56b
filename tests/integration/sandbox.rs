//! A sandbox that runs the real `dify-bootstrap` from rendered user data: the user data's `write_files` laid out
//! under a root as cloud-init writes them, stand-in devices and disk tools, and stand-ins for the outside world
//! (`docker`, `git`, `aws`, `curl`, `dnf`, `systemctl`) that record their calls. `git clone` copies a model of Dify's
//! release from `tests/contract/`; `aws secretsmanager`, `aws s3 cp` and `curl` answer from files the test writes
//! ([`BootSandbox::secret`], [`BootSandbox::serve`]); `docker compose … config` is real Docker Compose v2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::{root, venv};

pub struct BootSandbox {
    pub dir: tempfile::TempDir,
}

/// Stand-ins, each appending `name args` to `$SANDBOX/calls`. A device "has a filesystem" when `DEVICE.fs` exists
/// (holding its UUID); `DEVICE.blkid-exit` makes blkid fail with that code. `mount DIR` marks the data directory
/// mounted (the sandbox has no real mounts).
const STAND_INS: &[(&str, &str)] = &[
    (
        "blkid",
        "for a in \"$@\"; do d=\"$a\"; done\n[ -f \"$d.blkid-exit\" ] && exit \"$(cat \"$d.blkid-exit\")\"\n[ -f \"$d.fs\" ] || exit 2\ncase \"$*\" in *UUID*) cat \"$d.fs\";; *TYPE*) echo ext4;; esac\n",
    ),
    ("mkfs.ext4", "for a in \"$@\"; do d=\"$a\"; done\necho uuid-$$ > \"$d.fs\"\n"),
    ("mount", "[ $# -eq 1 ] && touch \"$SANDBOX/mounted\"\n"),
    ("umount", ""),
    ("mountpoint", "[ -f \"$SANDBOX/mounted\" ]\n"),
    ("resize2fs", ""),
    // findmnt -n -o SOURCE|FSTYPE --mountpoint DIR: the sandbox's sdf with ext4 once `mount` ran.
    ("findmnt", "[ -f \"$SANDBOX/mounted\" ] || exit 1\ncase \"$*\" in *SOURCE*) echo \"$SANDBOX/dev/sdf\";; *FSTYPE*) echo ext4;; esac\n"),
    ("logger", "cat >/dev/null\n"),
    ("systemctl", ""),
    ("dnf", "echo 'dnf: no package repositories in the sandbox' >&2; exit 1\n"),
    ("apt-get", "echo 'apt-get: no package repositories in the sandbox' >&2; exit 1\n"),
    // curl [-o DEST] URL: the file the test serves under $SANDBOX/web/<host>/<path> (to DEST, else to stdout: the
    // instance metadata at 169.254.169.254 so); anything else has no network.
    (
        "curl",
        "dest=''; url=''; prev=''; for a in \"$@\"; do [ \"$prev\" = -o ] && dest=\"$a\"; case \"$a\" in http://* | https://*) url=\"$a\";; esac; prev=\"$a\"; done\nf=\"$SANDBOX/web/${url#*://}\"\n{ [ -n \"$url\" ] && [ -f \"$f\" ]; } || { echo 'curl: (7) no network in the sandbox' >&2; exit 7; }\nif [ -n \"$dest\" ]; then cp \"$f\" \"$dest\"; else cat \"$f\"; fi\n",
    ),
    // docker compose version / up: recorded; `up` also records the project directory it ran in. `compose version`
    // fails when the image has no plugin (no `image-has-compose`) and none was installed. `compose … config` and
    // `--help` are real Docker Compose v2 (no daemon needed). `compose [OPTIONS] pull [SERVICE…]` appends the images
    // of those services, as real Compose resolves them with the same OPTIONS, to `pulled-images`, and fails when
    // `pull-fails` exists; `image inspect IMAGE` finds only what was pulled. `login` keeps what it read on stdin.
    (
        "docker",
        "case \"$1\" in\n  login) cat > \"$SANDBOX/docker-login-stdin\" ;;\n  image) [ \"$2\" = inspect ] && exec grep -qxF -- \"$3\" \"$SANDBOX/pulled-images\" ;;\n  compose)\n    case \" $* \" in *' config '* | *' --help '*) shift; exec \"$SANDBOX_COMPOSE\" \"$@\" ;; esac\n    case \" $* \" in *' pull '*)\n      [ -f \"$SANDBOX/pull-fails\" ] && { echo 'Error response from daemon: Get \"https://registry-1.docker.io/v2/\": dial tcp: i/o timeout' >&2; exit 18; }\n      shift; n=0; for a in \"$@\"; do [ \"$a\" = pull ] && break; n=$((n + 1)); done\n      services=''; i=0\n      for a in \"$@\"; do shift; if [ $i -lt $n ]; then set -- \"$@\" \"$a\"; elif [ $i -gt $n ]; then case \"$a\" in -*) ;; *) services=\"$services $a\" ;; esac; fi; i=$((i + 1)); done\n      \"$SANDBOX_COMPOSE\" \"$@\" config --format json | python3 -c 'import json, sys; s = json.load(sys.stdin)[\"services\"]; [print(s[n][\"image\"]) for n in sys.argv[1:]]' $services >> \"$SANDBOX/pulled-images\"\n      exit ;;\n    esac\n    case \"$2\" in version) { [ -f \"$SANDBOX/image-has-compose\" ] || [ -x \"$DIFY_CLI_PLUGINS/docker-compose\" ]; } || exit 1; echo 'Docker Compose version v2.40.3';; up) pwd >> \"$SANDBOX/compose-up-dirs\";; esac ;;\nesac\n",
    ),
    // git clone … --branch VERSION URL DIR: the release model for VERSION, or the error git gives for a missing tag.
    (
        "git",
        "branch=''; prev=''; for a in \"$@\"; do [ \"$prev\" = --branch ] && branch=\"$a\"; prev=\"$a\"; dest=\"$a\"; done\n[ -d \"$SANDBOX/upstream/$branch\" ] || { echo \"fatal: Remote branch $branch not found in upstream origin\" >&2; exit 128; }\nmkdir -p \"$dest\" && cp -R \"$SANDBOX/upstream/$branch/.\" \"$dest/\"\n",
    ),
    // aws secretsmanager …, once the test gave a Secrets Manager ($SANDBOX/secrets-manager-endpoint): boto3 against it
    // (aws-secretsmanager). Else get-secret-value --secret-id ARN --query SecretString --output text: the file named
    // after the ARN's last part, printed as the CLI prints text output (a newline after the value); missing = an error.
    // aws s3 cp s3://BUCKET/KEY DEST: the file the test serves under $SANDBOX/s3/BUCKET/KEY.
    // aws ecr get-login-password: a token, as the instance profile would get.
    (
        "aws",
        "if [ \"$1\" = secretsmanager ] && [ -f \"$SANDBOX/secrets-manager-endpoint\" ]; then exec \"$SANDBOX/bin/aws-secretsmanager\" \"$@\"; fi\ncase \"$1 $2\" in\n  'secretsmanager get-secret-value')\n    while [ \"$1\" != --secret-id ]; do shift; done\n    f=\"$SANDBOX/secrets-manager/${2##*:}\"\n    [ -f \"$f\" ] || { echo \"An error occurred (ResourceNotFoundException) when calling the GetSecretValue operation: Secrets Manager can't find the specified secret.\" >&2; exit 254; }\n    cat \"$f\"; echo ;;\n  's3 cp')\n    shift 2; set -- $(prev=''; for a in \"$@\"; do case \"$prev $a\" in '--region '* | *' --'*) ;; *) echo \"$a\";; esac; prev=\"$a\"; done)\n    f=\"$SANDBOX/s3/${1#s3://}\"\n    [ -f \"$f\" ] || { echo \"fatal error: An error occurred (404) when calling the HeadObject operation: Not Found\" >&2; exit 1; }\n    cp \"$f\" \"$2\" ;;\n  'ecr get-login-password') echo 'ecr-token-from-the-instance-profile' ;;\n  *) echo \"aws: not modelled in the sandbox: $*\" >&2; exit 255 ;;\nesac\n",
    ),
];

/// The sandbox's `aws secretsmanager` once the test gave it a Secrets Manager (moto): a real client (boto3) for the
/// argument forms dify-bootstrap uses, printing and failing as the AWS CLI does. The test seeds and reads the secret
/// with it too (`create-secret`, as the provider creates it).
const AWS_SECRETSMANAGER: &str = r#"
import json, os, sys
import boto3, botocore.exceptions
args = sys.argv[1:]
opts = dict(zip(args[2::2], args[3::2]))
if not opts.get("--region"):
    sys.exit("You must specify a region. You can also configure your region by running 'aws configure'.")
def text(value):
    return open(value[len("file://"):]).read() if value.startswith("file://") else value
client = boto3.client("secretsmanager", region_name=opts["--region"], aws_access_key_id="sandbox", aws_secret_access_key="sandbox",
                      endpoint_url=open(os.environ["SANDBOX"] + "/secrets-manager-endpoint").read().strip())
try:
    if args[1] == "get-secret-value":
        reply = client.get_secret_value(SecretId=opts["--secret-id"])
        if (opts.get("--query"), opts.get("--output")) == ("SecretString", "text"):
            print(reply["SecretString"])
            sys.exit(0)
    elif args[1] == "put-secret-value":
        reply = client.put_secret_value(SecretId=opts["--secret-id"], SecretString=text(opts["--secret-string"]))
    elif args[1] == "create-secret":
        reply = client.create_secret(Name=opts["--name"], SecretString=text(opts["--secret-string"]))
    else:
        sys.stderr.write("aws: not modelled in the sandbox: " + " ".join(args) + "\n")
        sys.exit(255)
except botocore.exceptions.ClientError as e:
    sys.stderr.write(f"\nAn error occurred ({e.response['Error']['Code']}) when calling the {e.operation_name} operation: {e.response['Error']['Message']}\n")
    sys.exit(254)
print(json.dumps({k: v for k, v in reply.items() if k in ("ARN", "Name", "VersionId")}, indent=4))
"#;

impl BootSandbox {
    /// A sandbox holding `user_data`'s files under `root/`, with the release models of `tests/contract/` as the
    /// upstream `git clone` reads, and no disk (`device` adds them).
    pub fn new(user_data: &str) -> BootSandbox {
        let sandbox = BootSandbox::bare();
        sandbox.write_user_data(user_data);
        sandbox
    }

    fn bare() -> BootSandbox {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        for sub in ["bin", "dev/disk/by-id", "root", "upstream", "secrets-manager"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        for (name, body) in STAND_INS {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/sh\necho \"{name} $*\" >> \"$SANDBOX/calls\"\n{body}")).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        for release in std::fs::read_dir(root().join("tests/contract")).unwrap().flatten() {
            let name = release.file_name().to_string_lossy().to_string();
            if let Some(version) = name.strip_prefix("dify-") {
                copy_dir(&release.path(), &dir.path().join("upstream").join(version));
            }
        }
        let aws = bin.join("aws-secretsmanager");
        std::fs::write(&aws, format!("#!{}\n{AWS_SECRETSMANAGER}", venv().join("bin/python").display())).unwrap();
        std::fs::set_permissions(&aws, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        // The instance metadata every instance has (IMDSv2: a token, then the region).
        let imds = dir.path().join("web/169.254.169.254/latest");
        std::fs::create_dir_all(imds.join("api")).unwrap();
        std::fs::create_dir_all(imds.join("meta-data/placement")).unwrap();
        std::fs::write(imds.join("api/token"), "sandbox-imds-token").unwrap();
        std::fs::write(imds.join("meta-data/placement/region"), "us-east-1").unwrap();
        std::fs::write(dir.path().join("fstab"), "").unwrap();
        std::fs::write(dir.path().join("image-has-compose"), "").unwrap();
        BootSandbox { dir }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Lays out the user data's `write_files` under `root/` as cloud-init does (base64 decoded, with their modes).
    pub fn write_user_data(&self, user_data: &str) {
        let file = self.path("user-data.yaml");
        std::fs::write(&file, user_data).unwrap();
        let script = "import base64, os, sys, yaml\n\
            doc = yaml.safe_load(open(sys.argv[1]))\n\
            for f in doc['write_files']:\n\
            \x20   path = sys.argv[2] + f['path']\n\
            \x20   os.makedirs(os.path.dirname(path), exist_ok=True)\n\
            \x20   data = base64.b64decode(f['content']) if f.get('encoding') == 'b64' else f['content'].encode()\n\
            \x20   open(path, 'wb').write(data)\n\
            \x20   os.chmod(path, int(f.get('permissions', '0644'), 8))\n";
        let out = Command::new(venv().join("bin/python")).args(["-c", script]).arg(&file).arg(self.path("root")).output().unwrap();
        assert!(out.status.success(), "write_files: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A stand-in block device (a regular file) under the sandbox's /dev.
    pub fn device(&self, name: &str) -> PathBuf {
        let p = self.path(&format!("dev/{name}"));
        std::fs::write(&p, "").unwrap();
        p
    }

    /// The data volume is mounted at the data directory: what the test puts there is on the volume's filesystem.
    pub fn mount_data_volume(&self) {
        std::fs::create_dir_all(self.data_dir()).unwrap();
        std::fs::write(self.path("mounted"), "").unwrap();
    }

    /// Puts a secret into the stand-in Secrets Manager, under the last part of its ARN.
    pub fn secret(&self, name: &str, value: &str) {
        std::fs::write(self.path("secrets-manager").join(name), value).unwrap();
    }

    /// `aws secretsmanager` talks to the Secrets Manager at `endpoint` (moto) instead of the sandbox's files.
    pub fn use_secrets_manager(&self, endpoint: &str) {
        std::fs::write(self.path("secrets-manager-endpoint"), endpoint).unwrap();
    }

    /// An instance tag as the instance metadata serves it (`meta-data/tags/instance/KEY`).
    pub fn instance_tag(&self, key: &str, value: &str) {
        let tags = self.path("web/169.254.169.254/latest/meta-data/tags/instance");
        std::fs::create_dir_all(&tags).unwrap();
        std::fs::write(tags.join(key), value).unwrap();
    }

    /// Runs the sandbox's `aws` (what dify-bootstrap runs), for the test to seed or read what the instance sees.
    pub fn aws(&self, args: &[&str]) -> Output {
        Command::new(self.path("bin/aws")).args(args).env("SANDBOX", self.dir.path()).output().unwrap()
    }

    /// Serves `file` at `url` (`s3://bucket/key` to `aws s3 cp`, `https://host/path` to `curl`).
    pub fn serve(&self, url: &str, file: &Path) {
        let (scheme, rest) = url.split_once("://").unwrap();
        let target = self.path(if scheme == "s3" { "s3" } else { "web" }).join(rest);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(file, target).unwrap();
    }

    /// The release model for `version` as a tarball of its `docker/` directory (as `tar -czf` makes it), and its
    /// SHA-256 in hex.
    pub fn release_tarball(&self, version: &str) -> (PathBuf, String) {
        let tarball = self.path(&format!("dify-{version}-docker.tar.gz"));
        let out = Command::new("tar").arg("-czf").arg(&tarball).arg("-C").arg(self.upstream(version)).arg("docker").output().unwrap();
        assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
        (tarball.clone(), sha256_of(&tarball))
    }

    /// The release model for `version` as GitHub's source archive lays it out (`dify-VERSION/docker/…`).
    pub fn release_archive(&self, version: &str) -> (PathBuf, String) {
        let staging = self.path(&format!("archive/dify-{version}"));
        copy_dir(&self.upstream(version), &staging);
        std::fs::write(staging.join("README.md"), "the rest of the repository\n").unwrap();
        let tarball = self.path(&format!("dify-{version}.tar.gz"));
        let out = Command::new("tar").arg("-czf").arg(&tarball).arg("-C").arg(self.path("archive")).arg(format!("dify-{version}")).output().unwrap();
        assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
        (tarball.clone(), sha256_of(&tarball))
    }

    /// The image has no Docker Compose plugin: `docker compose version` fails until one is installed.
    pub fn without_compose_plugin(&self) {
        std::fs::remove_file(self.path("image-has-compose")).unwrap();
    }

    /// A release model for `version` as the upstream `git clone` finds it.
    pub fn upstream(&self, version: &str) -> PathBuf {
        self.path("upstream").join(version)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path("root/opt/dify-data")
    }

    /// Runs the bootstrap the user data installed (as dify.service does) with data volume `volume`.
    pub fn boot(&self, volume: &str) -> Output {
        self.run(volume, false)
    }

    /// Runs the bootstrap up to Docker: the disk, the secrets and the values for Dify's `.env`.
    pub fn boot_without_compose(&self, volume: &str) -> Output {
        self.run(volume, true)
    }

    /// Runs `dify-bootstrap grow`, as dify-grow.service does when a block device reports a new size.
    pub fn grow(&self) -> Output {
        self.command("").arg("grow").output().unwrap()
    }

    fn run(&self, volume: &str, skip_compose: bool) -> Output {
        let mut cmd = self.command(volume);
        if skip_compose {
            cmd.env("DIFY_SKIP_COMPOSE", "1");
        }
        cmd.output().unwrap()
    }

    /// The bootstrap as dify.service runs it, with data volume `volume`, for the test to add to and start.
    pub fn command(&self, volume: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(self.path("root/usr/local/sbin/dify-bootstrap"))
            .env("PATH", format!("{}:{}", self.path("bin").display(), std::env::var("PATH").unwrap_or_default()))
            .env("SANDBOX", self.dir.path())
            .env("SANDBOX_COMPOSE", venv().join("bin/docker-compose"))
            .env("DIFY_SETTINGS", self.path("root/etc/dify/dify.env"))
            .env("DIFY_DATA_DIR", self.data_dir())
            .env("DIFY_RELEASES", self.path("root/opt/dify"))
            .env("DIFY_DATA_VOLUME_ID", volume)
            .env("DIFY_DEV_ROOT", self.dir.path())
            .env("DIFY_FSTAB", self.path("fstab"))
            .env("DIFY_CLI_PLUGINS", self.path("cli-plugins"))
            .env("DIFY_LOG", self.path("bootstrap.log"))
            .env("DIFY_CONSOLE", "/dev/null")
            .env("DIFY_DEVICE_WAIT_SECONDS", "2");
        cmd
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("bootstrap.log")).unwrap_or_default()
    }

    pub fn calls(&self, tool: &str) -> usize {
        std::fs::read_to_string(self.path("calls")).unwrap_or_default().lines().filter(|l| l.starts_with(tool)).count()
    }

    /// The `curl` calls that left the instance (not to its metadata at 169.254.169.254).
    pub fn curl_downloads(&self) -> usize {
        std::fs::read_to_string(self.path("calls")).unwrap_or_default().lines().filter(|l| l.starts_with("curl") && !l.contains("169.254.169.254")).count()
    }

    /// The project directories `docker compose up` ran in, in order.
    pub fn compose_up_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_to_string(self.path("compose-up-dirs")).unwrap_or_default().lines().map(PathBuf::from).collect()
    }
}

pub fn sha256_of(file: &Path) -> String {
    let digest = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(std::fs::read(file).unwrap()));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
