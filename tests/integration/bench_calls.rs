//! Benchmark (not a test: `#[ignore]`, run by `make bench`): AWS calls per operation, counted by the proxy, for each
//! resource alone and for the dev and prd environments; process cost; Terraform's overhead against a floor provider;
//! scale; wait latency. Each writes its Markdown table to target/bench/, which `bench/report.py` (run by make bench)
//! puts into docs/benchmarks.md.

use std::collections::BTreeMap;

use crate::environments::{in_env, prepare};
use crate::harness::{Moto, Workspace};
use crate::proxy::AwsProxy;

fn summary(proxy: &AwsProxy) -> (usize, String) {
    let counts: BTreeMap<String, usize> = proxy.counts().into_iter().collect();
    let total = counts.values().sum();
    let detail = counts.iter().map(|(op, n)| format!("{}×{n}", op.rsplit(':').next().unwrap_or(op))).collect::<Vec<_>>().join(", ");
    (total, detail)
}

/// Prints a result table and writes it to target/bench/NAME.md for `bench/report.py`.
fn publish(name: &str, table: &str) {
    println!("\n{table}\n");
    let dir = crate::harness::root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.md")), format!("{table}\n")).unwrap();
}

fn row(label: &str, proxy: &AwsProxy, rows: &mut Vec<String>) {
    let (total, detail) = summary(proxy);
    rows.push(format!("| {label} | {total} | {detail} |"));
    proxy.clear_calls();
}

const SINGLE: &[(&str, &str)] = &[
    (
        "dify_persistent_volume",
        "resource \"dify_persistent_volume\" \"v\" {\n  name = \"v\"\n  availability_zone = \"us-east-1a\"\n  final_snapshot = false\n}\n",
    ),
    (
        "dify_dns_record",
        "resource \"dify_dns_record\" \"r\" {\n  zone_id = \"ZONE\"\n  name = \"dify.example.com\"\n  alias {\n    dns_name = \"lb.example.com\"\n    zone_id = \"Z35SXDOTRQ7X7K\"\n  }\n}\n",
    ),
];

#[tokio::test]
#[ignore = "benchmark: run by make bench"]
async fn aws_calls_per_operation() {
    let mut rows = vec!["| operation | AWS calls | by operation |".to_string(), "| --- | --- | --- |".to_string()];
    for (name, body) in SINGLE {
        let moto = Moto::start();
        let zone = moto.route53().await.create_hosted_zone().name("example.com").caller_reference("bench").send().await.unwrap().hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_string();
        let proxy = AwsProxy::start(&moto.endpoint());
        let ws = Workspace::via(&proxy.endpoint(), &format!("terraform {{\n  required_providers {{\n    dify = {{ source = \"NAMESPACE/dify\" }}\n  }}\n}}\nprovider \"dify\" {{\n  skip_credentials_validation = true\n}}\n{}", body.replace("ZONE", &zone)));
        ws.init();
        proxy.clear_calls();
        ws.ok(&["apply", "-auto-approve", "-input=false"]);
        row(&format!("{name}: create (plan + apply)"), &proxy, &mut rows);
        ws.ok(&["plan", "-input=false"]);
        row(&format!("{name}: refresh (plan)"), &proxy, &mut rows);
        ws.ok(&["destroy", "-auto-approve", "-input=false"]);
        row(&format!("{name}: destroy"), &proxy, &mut rows);
    }
    for (env, cidr) in [("dev", "10.13"), ("prd", "10.15")] {
        let moto = Moto::start();
        let proxy = AwsProxy::start(&moto.endpoint());
        let (ws, vars) = prepare(env, cidr, &moto, &proxy.endpoint()).await;
        proxy.clear_calls();
        assert_eq!(in_env(&ws, env, &["apply", "-auto-approve", "-input=false"], &vars).code, 0);
        row(&format!("{env} environment: create (plan + apply)"), &proxy, &mut rows);
        assert_eq!(in_env(&ws, env, &["plan", "-input=false"], &vars).code, 0);
        row(&format!("{env} environment: refresh (plan)"), &proxy, &mut rows);
        assert_eq!(in_env(&ws, env, &["plan", "-refresh=false", "-input=false"], &vars).code, 0);
        row(&format!("{env} environment: plan without refresh"), &proxy, &mut rows);
        // Each resource's share of the refresh, by targeting it alone.
        for (address, label) in [("module.dify.dify_alb.this", "dify_alb"), ("module.dify.dify_ec2_stack.this", "dify_ec2_stack")] {
            assert_eq!(in_env(&ws, env, &["plan", "-input=false", &format!("-target={address}")], &vars).code, 0);
            row(&format!("{env}: {label} refresh (with what it depends on)"), &proxy, &mut rows);
        }
        if env == "dev" {
            assert_eq!(in_env(&ws, env, &["destroy", "-auto-approve", "-input=false"], &vars).code, 0);
            row(&format!("{env} environment: destroy (plan + apply)"), &proxy, &mut rows);
        }
    }
    publish("calls", &rows.join("\n"));
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The binary to measure: `DIFY_BENCH_BINARY` (make bench points it at the release build), else the test build.
fn bench_binary() -> std::path::PathBuf {
    std::env::var_os("DIFY_BENCH_BINARY").map(Into::into).unwrap_or_else(crate::harness::provider_binary)
}

/// Highest resident memory (VmHWM, KiB) of any running provider process.
fn provider_peak_rss_kib() -> u64 {
    let mut peak = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim().starts_with("terraform-provi") {
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            if let Some(kib) = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()) {
                peak = peak.max(kib);
            }
        }
    }
    peak
}

#[tokio::test]
#[ignore = "benchmark: run by make bench"]
async fn process_cost() {
    use crate::protocol::{client_identity, free_port_range, mtls_channel, start_binary_as_terraform};
    use terraform_provider_dify::protocol::proto::tfplugin6 as pb;
    let binary = bench_binary();
    let client = client_identity();
    let (mut handshakes, mut schemas) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        let started = std::time::Instant::now();
        let p = start_binary_as_terraform(&binary, &client, free_port_range());
        handshakes.push(started.elapsed().as_secs_f64() * 1000.0);
        let channel = mtls_channel(p.addr, p.server_der.clone(), &client).await.unwrap();
        let mut provider = pb::provider_client::ProviderClient::new(channel);
        let asked = std::time::Instant::now();
        provider.get_provider_schema(pb::get_provider_schema::Request {}).await.unwrap();
        schemas.push(asked.elapsed().as_secs_f64() * 1000.0);
    }
    let size = std::fs::metadata(&binary).unwrap().len();

    // Peak memory of the provider processes during a full dev apply.
    let moto = Moto::start();
    let mirror = crate::harness::mirror_of(&binary);
    let (ws, vars) = crate::environments::prepare_with("dev", "10.13", &moto, &moto.endpoint(), &mirror).await;
    let mut args: Vec<String> = vec!["-chdir=environments/dev".into(), "apply".into(), "-auto-approve".into(), "-input=false".into(), "-no-color".into()];
    args.extend(vars);
    let mut child = ws.command(&args.iter().map(String::as_str).collect::<Vec<_>>()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(provider_peak_rss_kib());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    publish("process", &format!(
        "| measure | value |\n| --- | --- |\n| binary ({}) | {:.1} MiB |\n| start to handshake line, median of 15 | {:.1} ms |\n| GetProviderSchema over mTLS, median of 15 | {:.2} ms |\n| peak RSS of a provider process during a dev apply | {:.1} MiB |",
        binary.strip_prefix(crate::harness::root()).unwrap_or(&binary).display(),
        size as f64 / 1048576.0,
        median(handshakes),
        median(schemas),
        peak as f64 / 1024.0
    ));
}

/// Terraform's time for the dev environment with this provider (against the emulator) over the same with the floor
/// provider (same schemas, no AWS): what the provider adds to Terraform's own cost. Set DIFY_FLOOR_BINARY. This
/// provider is `bench_binary()` (make bench: the release build users run); the floor is a release build too. The
/// proxy measures how long the emulator was answering (the union of in-flight calls), which is AWS's time, not the
/// provider's: the net ratio takes it out.
#[tokio::test]
#[ignore = "benchmark: run by make bench"]
async fn terraform_overhead_against_a_floor_provider() {
    let Some(floor) = std::env::var_os("DIFY_FLOOR_BINARY") else {
        println!("DIFY_FLOOR_BINARY is not set: build bench/floor_provider.rs (make bench does)");
        return;
    };
    let ours = crate::harness::mirror_of(&bench_binary());
    let floor = crate::harness::mirror_of(std::path::Path::new(&floor));
    let mut times: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    const RUNS: usize = 7;
    for _ in 0..RUNS {
        for (who, mirror) in [("ours", &ours), ("floor", &floor)] {
            let moto = Moto::start();
            let proxy = AwsProxy::start(&moto.endpoint());
            let (ws, vars) = crate::environments::prepare_with("dev", "10.13", &moto, &proxy.endpoint(), mirror).await;
            for command in ["apply", "plan"] {
                let args: &[&str] = if command == "apply" { &["apply", "-auto-approve", "-input=false"] } else { &["plan", "-input=false"] };
                proxy.clear_calls();
                let started = std::time::Instant::now();
                let out = in_env(&ws, "dev", args, &vars);
                let wall = started.elapsed().as_secs_f64();
                assert_eq!(out.code, 0, "{who} {command}: {}", out.all());
                times.entry((command, who)).or_default().push(wall);
                if who == "ours" {
                    times.entry((command, "net")).or_default().push(wall - proxy.busy().as_secs_f64());
                    times.entry((command, "busy")).or_default().push(proxy.busy().as_secs_f64());
                }
            }
        }
    }
    let mut report = vec![
        format!("| command (dev environment), median of {RUNS} | this provider (s) | emulator answering (s) | this provider without it (s) | floor (s) | ratio | net ratio |"),
        "| --- | --- | --- | --- | --- | --- | --- |".to_string(),
    ];
    for command in ["apply", "plan"] {
        let [ours, busy, net, floor] = ["ours", "busy", "net", "floor"].map(|who| median(times[&(command, who)].clone()));
        report.push(format!("| terraform {command} | {ours:.2} | {busy:.2} | {net:.2} | {floor:.2} | {:.2} | {:.2} |", ours / floor, net / floor));
    }
    publish("overhead", &report.join("\n"));
}

/// Plan and apply of N dev-shaped stacks (network lookup, volume, ALB, stack, record each) in one configuration:
/// time and AWS calls per stack, which should stay flat as N grows. DIFY_SCALE lists the sizes (default "1,10").
#[tokio::test]
#[ignore = "benchmark: run by make bench"]
async fn scale_per_stack() {
    let sizes: Vec<usize> = std::env::var("DIFY_SCALE").unwrap_or_else(|_| "1,10".into()).split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let mut report = vec!["| stacks | apply (s) | apply calls per stack | refresh (s) | refresh calls per stack |".to_string(), "| --- | --- | --- | --- | --- |".to_string()];
    for n in sizes {
        let moto = Moto::start();
        let proxy = AwsProxy::start(&moto.endpoint());
        let (ws, vars) = prepare("dev", "10.13", &moto, &proxy.endpoint()).await;
        ws.write(
            "environments/dev/scale.tf",
            &format!(
                "module \"scale\" {{\n  source = \"../../modules/dify\"\n  for_each = toset([for i in range({n}) : \"s${{i}}\"])\n  env = each.key\n  vpc_name = var.vpc_name\n  public_subnet_names = var.public_subnet_names\n  private_subnet_names = var.private_subnet_names\n  office_ip_list = var.common_office_ip_list\n  certificate_arn = var.certificate_arn\n  hosted_zone_id = var.hosted_zone_id\n  domain_name = \"${{each.key}}.example.com\"\n  instance_type = var.instance_type\n  data_volume_size_gb = 20\n}}\n"
            ),
        );
        // Only the scaled stacks: the env's own module is removed.
        let main = std::fs::read_to_string(ws.dir.path().join("environments/dev/main.tf")).unwrap();
        let cut = main.find("module \"dify\"").unwrap();
        std::fs::write(ws.dir.path().join("environments/dev/main.tf"), &main[..cut]).unwrap();
        assert_eq!(in_env(&ws, "dev", &["init", "-input=false"], &[]).code, 0);
        proxy.clear_calls();
        let started = std::time::Instant::now();
        let out = in_env(&ws, "dev", &["apply", "-auto-approve", "-input=false"], &vars);
        assert_eq!(out.code, 0, "{}", out.all());
        let apply_time = started.elapsed().as_secs_f64();
        let apply_calls = summary(&proxy).0;
        proxy.clear_calls();
        let started = std::time::Instant::now();
        assert_eq!(in_env(&ws, "dev", &["plan", "-input=false"], &vars).code, 0);
        let plan_time = started.elapsed().as_secs_f64();
        let plan_calls = summary(&proxy).0;
        report.push(format!("| {n} | {apply_time:.1} | {:.1} | {plan_time:.1} | {:.1} |", apply_calls as f64 / n as f64, plan_calls as f64 / n as f64));
    }
    publish("scale", &report.join("\n"));
}

/// How long after an object becomes ready the provider notices: the proxy shows the load balancer provisioning, the
/// instance pending, the volume creating and the Route 53 change PENDING for a fixed delay after the first answer that
/// would show it ready, then lets readiness through; the notice latency is from then to the provider's next poll.
#[tokio::test]
#[ignore = "benchmark: run by make bench"]
async fn wait_latency() {
    use crate::proxy::Rule;
    use std::time::Duration;
    const WAITS: &[(&str, &str, &str, &str)] = &[
        ("load balancer active", "elasticloadbalancing:DescribeLoadBalancers", "<Code>active</Code>", "<Code>provisioning</Code>"),
        ("instance running", "ec2:DescribeInstances", "<name>running</name>", "<name>pending</name>"),
        ("volume available", "ec2:DescribeVolumes", "<status>available</status>", "<status>creating</status>"),
        ("Route 53 change INSYNC", "route53:GetChange", "<Status>INSYNC</Status>", "<Status>PENDING</Status>"),
    ];
    // Off the poll grid, so some land just after a poll (the worst case) and some just before.
    let delays = [2.1, 4.9, 11.0, 19.5];
    let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); WAITS.len()];
    let mut polls: Vec<Vec<usize>> = vec![Vec::new(); WAITS.len()];
    for delay in delays {
        let moto = Moto::start();
        let proxy = AwsProxy::start(&moto.endpoint());
        let (ws, vars) = prepare("dev", "10.13", &moto, &proxy.endpoint()).await;
        proxy.clear_calls();
        for (_, operation, ready, not_ready) in WAITS {
            proxy.add_rule(Rule::NotReadyFor { operation: operation.to_string(), ready: ready.to_string(), not_ready: not_ready.to_string(), delay: Duration::from_secs_f64(delay) });
        }
        let out = in_env(&ws, "dev", &["apply", "-auto-approve", "-input=false"], &vars);
        assert_eq!(out.code, 0, "{}", out.all());
        let calls = proxy.calls();
        for (i, seen) in proxy.readiness().into_iter().enumerate() {
            let noticed = seen.noticed_at.unwrap_or_else(|| panic!("{} never polled after it was ready", WAITS[i].0));
            latencies[i].push(noticed.duration_since(seen.ready_at).as_secs_f64());
            // Polls while not ready: the describe rate a waiter costs.
            polls[i].push(calls.iter().filter(|c| c.operation == seen.operation && c.answered >= seen.ready_at - Duration::from_secs_f64(delay) && c.answered < seen.ready_at).count());
        }
    }
    let mut report = vec![
        format!("| wait | notice latency after a delay of {} s | median | max | polls during the {} s delay |", delays.map(|d| d.to_string()).join(" / "), delays[delays.len() - 1]),
        "| --- | --- | --- | --- | --- |".to_string(),
    ];
    for (i, (name, ..)) in WAITS.iter().enumerate() {
        let each = latencies[i].iter().map(|l| format!("{l:.2}")).collect::<Vec<_>>().join(" / ");
        let max = latencies[i].iter().cloned().fold(0.0, f64::max);
        report.push(format!("| {name} | {each} | {:.2} | {max:.2} | {} |", median(latencies[i].clone()), polls[i].last().unwrap()));
    }
    publish("waits", &report.join("\n"));
}

/// The orchestration timeline of a version upgrade of a one-instance stack with a data volume, from the proxy's call
/// log: each changing AWS call (and the console polls) with its offset from the apply's first call, and the window
/// from the old target's DeregisterTargets to the last DescribeTargetHealth before the old instance is terminated
/// (the poll that saw the new target healthy): the AWS side of the upgrade's downtime, against the emulator, where
/// every state change is immediate. The replacement's console shows the marker `PREPARE_S` after its launch, a stand-in
/// for the install and image pulls that happen before the old instance is touched.
#[tokio::test]
#[ignore = "benchmark: run by make bench"]
async fn upgrade_timeline() {
    use crate::proxy::{is_read_only, Rule};
    const PREPARE_S: u64 = 5;
    let moto = Moto::start();
    let up = crate::upgrades::applied_at(&moto, "1.13.3").await;
    up.to("1.14.0");
    up.proxy.add_rule(Rule::Console { text: crate::console::prepared("1.14.0"), delay: std::time::Duration::from_secs(PREPARE_S) });
    up.proxy.clear_calls();
    up.ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let calls = up.proxy.calls();
    let start = calls[0].received;
    let at = |c: &crate::proxy::Call| c.received.duration_since(start).as_secs_f64();
    let mut rows = vec!["| at (s) | AWS call | step |".to_string(), "| --- | --- | --- |".to_string()];
    let polls: Vec<_> = calls.iter().filter(|c| c.operation == "ec2:GetConsoleOutput").collect();
    let mut polls_shown = false;
    for c in &calls {
        let step = match c.operation.rsplit(':').next().unwrap_or_default() {
            "CreateLaunchTemplateVersion" | "ModifyLaunchTemplate" => "the new boot configuration",
            "RunInstances" => "launch the replacement beside the serving instance",
            "GetConsoleOutput" => "poll the replacement's console until DIFY-PREPARED",
            "DeregisterTargets" => "deregister the old target (downtime starts)",
            "StopInstances" => "stop the old instance",
            "CreateSnapshot" => "pre-replace snapshot (not waited for)",
            "DetachVolume" => "detach the data volume",
            "AttachVolume" => "attach it to the replacement",
            "RegisterTargets" => "register the replacement",
            "TerminateInstances" => "terminate the old instance",
            _ if is_read_only(&c.operation) => continue,
            _ => "",
        };
        if c.operation == "ec2:GetConsoleOutput" {
            if !polls_shown {
                let last = polls.last().map(|p| at(p)).unwrap_or_default();
                rows.push(format!("| {:.2} – {last:.2} | {} ×{} | {step} |", at(c), c.operation, polls.len()));
                polls_shown = true;
            }
            continue;
        }
        rows.push(format!("| {:.2} | {} | {step} |", at(c), c.operation));
    }
    let find = |op: &str| calls.iter().position(|c| c.operation == op).unwrap_or_else(|| panic!("no {op}"));
    let (deregistered, terminated) = (find("elasticloadbalancing:DeregisterTargets"), find("ec2:TerminateInstances"));
    let healthy = calls[..terminated].iter().rev().find(|c| c.operation == "elasticloadbalancing:DescribeTargetHealth").expect("the new target's health was read");
    let window = healthy.answered.duration_since(calls[deregistered].received).as_secs_f64();
    let total = calls.last().unwrap().answered.duration_since(start).as_secs_f64();
    rows.push(String::new());
    rows.push(format!(
        "Old target deregistered to new target healthy (the AWS side of the downtime): **{window:.2} s** of a {total:.1} s apply; the replacement's {PREPARE_S} s of preparation ({} console polls) all fall before it.",
        polls.len()
    ));
    publish("upgrade-timeline", &rows.join("\n"));
}
