//! A counting, fault-injecting AWS proxy between the provider and the emulator, on 127.0.0.1 and its own runtime
//! thread (tests block on Terraform child processes). It names each call `service:Operation`, keeps an ordered
//! call log with each call's time at the emulator, and applies rules: hold a response back (to interrupt an apply at
//! a known point), fail a call, or show an object as not ready yet for a fixed time. Data Lifecycle Manager calls,
//! which the emulator lacks, are answered by the proxy's own `FakeDlm`; instances' consoles (GetConsoleOutput) by
//! `console`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::console;
use crate::fake_dlm::{self, FakeDlm};

#[derive(Clone, Debug)]
pub struct Call {
    /// `service:Operation`, e.g. `ec2:CreateVolume`.
    pub operation: String,
    pub status: u16,
    /// The request body of a query-protocol call (EC2, ELBv2: `Action=…&InstanceId.1=…`); empty for the others.
    pub request: String,
    /// When the proxy received the call, and when it had the answer (from the emulator, or its own fault).
    pub received: Instant,
    pub answered: Instant,
}

#[derive(Clone, Debug)]
pub enum Rule {
    /// Forward the call, then hold the response back this long (the emulator has already acted).
    DelayResponse { operation: String, delay: Duration },
    /// Answer with this HTTP status and AWS error code instead of forwarding, `times` times.
    Fail { operation: String, status: u16, code: String, times: usize },
    /// From the first answer of `operation` containing `ready` until `delay` later, answer with `ready` replaced by
    /// `not_ready` (an ALB still provisioning, an instance pending): AWS's readiness arriving after a fixed delay.
    NotReadyFor { operation: String, ready: String, not_ready: String, delay: Duration },
    /// The console (GetConsoleOutput) of every instance launched after this rule was added: empty until `delay`
    /// after its launch, then `text` (see `console::prepared`, `console::failed`). Without one, an instance's
    /// console is `console::prepared` for the version in its user data.
    Console { text: String, delay: Duration },
}

/// Whether an operation only reads (`Describe*`, `List*`, `Get*`); everything else changes something.
pub fn is_read_only(operation: &str) -> bool {
    let op = operation.rsplit(':').next().unwrap_or(operation);
    op.starts_with("Describe") || op.starts_with("List") || op.starts_with("Get")
}

/// Who an interrupted run kills.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kill {
    /// Terraform and the provider together (SIGKILL to the process group): a CI job cancelled.
    Both,
    /// Terraform alone: the provider is orphaned and must stop by itself.
    TerraformAlone,
    /// The provider alone (a crash, the OOM killer): Terraform reports it and saves what it knows.
    ProviderAlone,
}

/// When an interrupted run is killed.
#[derive(Clone, Copy, Debug)]
pub enum KillPoint {
    /// Right after a new call of this operation (`ec2:RunInstances`) reached the emulator, its answer held back.
    AtCall(&'static str),
    /// Right after the Nth call that changes something reached the emulator, its answer held back.
    AtChange(usize),
    /// This long after the run started.
    After(Duration),
}

/// What a `NotReadyFor` rule saw: when readiness was shown, and when the provider first asked after that.
#[derive(Clone, Debug)]
pub struct Readiness {
    pub operation: String,
    pub ready_at: Instant,
    /// When the first answer showing the object ready left the proxy.
    pub noticed_at: Option<Instant>,
}

/// Seeded random faults on a share of calls, injected before the call reaches the emulator (as a throttle or an
/// outage would), plus "eventual consistency lies": a describe-by-id right after a create answers NotFound.
#[derive(Clone, Debug)]
pub struct Chaos {
    pub seed: u64,
    /// Share of calls that get a fault, 0.0–1.0.
    pub rate: f64,
    /// How many describes-by-id after a create are answered NotFound.
    pub stale_reads: usize,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    rules: Vec<Rule>,
    chaos: Option<(Chaos, u64)>,
    /// Describe operations still owed a NotFound, by operation.
    stale: HashMap<String, usize>,
    faults: HashMap<String, usize>,
    /// Hold back the answer to the changing call that brings their count in `calls` to this.
    hold_change: Option<usize>,
    /// Per `NotReadyFor` rule (by its index in `rules`), once it has started hiding readiness.
    readiness: HashMap<usize, Readiness>,
    dlm: FakeDlm,
    /// Instances launched through the proxy: when, and the console the `Rule::Console` then in force gave them.
    launched: HashMap<String, (Instant, Option<(String, Duration)>)>,
}

/// One step of xorshift64*: reproducible from the seed, independent of the machine.
pub fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// For a create operation: the describe that would see the new object, and the NotFound code it answers.
fn stale_after(operation: &str) -> Option<(&'static str, &'static str)> {
    match operation.rsplit(':').next()? {
        "CreateVolume" => Some(("ec2:DescribeVolumes", "InvalidVolume.NotFound")),
        "RunInstances" => Some(("ec2:DescribeInstances", "InvalidInstanceID.NotFound")),
        "CreateLoadBalancer" => Some(("elasticloadbalancing:DescribeLoadBalancers", "LoadBalancerNotFound")),
        "CreateTargetGroup" => Some(("elasticloadbalancing:DescribeTargetGroups", "TargetGroupNotFound")),
        _ => None,
    }
}

/// Whether a describe names objects by id (AWS answers NotFound for a missing id; filters just answer nothing).
fn describes_by_id(body: &str) -> bool {
    ["VolumeId.1=", "InstanceId.1=", "LoadBalancerArns.member.1=", "TargetGroupArns.member.1="].iter().any(|k| body.contains(k))
}

pub struct AwsProxy {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The signing service from the SigV4 credential scope, e.g. `ec2`.
fn service(parts: &hyper::http::request::Parts) -> String {
    parts
        .headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unknown")
        .to_string()
}

/// The operation: `Action=` for query protocols (EC2, ELBv2, STS), the target header for JSON protocols, and the
/// REST shape for EBS direct and Route 53.
fn operation(parts: &hyper::http::request::Parts, body: &[u8]) -> String {
    let body = String::from_utf8_lossy(body);
    if let Some(action) = body.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
        return action.to_string();
    }
    if let Some(target) = parts.headers.get("x-amz-target").and_then(|h| h.to_str().ok()) {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    let path = parts.uri.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = parts.method.as_str();
    match (method, segments.as_slice()) {
        ("POST", ["snapshots"]) => "StartSnapshot".into(),
        ("PUT", ["snapshots", _, "blocks", _]) => "PutSnapshotBlock".into(),
        ("POST", ["snapshots", "completion", _]) => "CompleteSnapshot".into(),
        ("GET", ["snapshots", _, "blocks"]) => "ListSnapshotBlocks".into(),
        ("GET", ["snapshots", _, "blocks", _]) => "GetSnapshotBlock".into(),
        (_, [_, "hostedzone", _, "rrset"]) if method == "POST" => "ChangeResourceRecordSets".into(),
        (_, [_, "hostedzone", _, "rrset"]) => "ListResourceRecordSets".into(),
        (_, [_, "change", _]) => "GetChange".into(),
        _ => format!("{method} {}", segments.first().unwrap_or(&"")),
    }
}

/// An AWS error in the wire format of the operation's service (EC2 query, the other query/REST-XML services, or
/// REST-JSON for EBS direct), so the SDK parses its code exactly as it would AWS's.
fn aws_error(operation: &str, status: u16, code: &str) -> Response<Full<Bytes>> {
    const MESSAGE: &str = "injected by the test proxy";
    let (content_type, body) = match operation.split(':').next().unwrap_or_default() {
        "ec2" => ("text/xml", format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code><Message>{MESSAGE}</Message></Error></Errors><RequestID>proxy</RequestID></Response>")),
        "ebs" | "dlm" => ("application/json", format!("{{\"message\":\"{MESSAGE}\"}}")),
        _ => ("text/xml", format!("<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{MESSAGE}</Message></Error><RequestId>proxy</RequestId></ErrorResponse>")),
    };
    Response::builder().status(status).header("content-type", content_type).header("x-amzn-errortype", code).body(Full::new(Bytes::from(body))).unwrap()
}

enum Fault {
    Error(u16, String),
    Reset,
    Latency(Duration),
}

/// Returned by the service to make hyper drop the connection without an answer.
#[derive(Debug)]
struct ConnectionReset;

impl std::fmt::Display for ConnectionReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "injected connection reset")
    }
}

impl std::error::Error for ConnectionReset {}

async fn handle(state: Arc<Mutex<State>>, upstream: String, client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, ConnectionReset> {
    let received = Instant::now();
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let service = service(&parts);
    let op = match service.as_str() {
        "dlm" => format!("dlm:{}", fake_dlm::operation(parts.method.as_str(), parts.uri.path())),
        _ => format!("{service}:{}", operation(&parts, &body)),
    };

    let body_text = String::from_utf8_lossy(&body).to_string();
    let request = if body_text.starts_with("Action=") || body_text.contains("&Action=") { body_text.clone() } else { String::new() };
    let chaos_fault = {
        let mut s = state.lock().unwrap();
        let mut fault = None;
        if let Some((chaos, mut rng)) = s.chaos.clone() {
            let owed = s.stale.get(&op).copied().unwrap_or(0);
            if owed > 0 && describes_by_id(&body_text) {
                s.stale.insert(op.clone(), owed - 1);
                let code = match op.as_str() {
                    "ec2:DescribeVolumes" => "InvalidVolume.NotFound",
                    "ec2:DescribeInstances" => "InvalidInstanceID.NotFound",
                    "elasticloadbalancing:DescribeLoadBalancers" => "LoadBalancerNotFound",
                    _ => "TargetGroupNotFound",
                };
                fault = Some(Fault::Error(400, code.to_string()));
            } else if (next_random(&mut rng) % 10_000) as f64 / 10_000.0 < chaos.rate {
                fault = Some(match next_random(&mut rng) % 7 {
                    0 => Fault::Error(400, "Throttling".into()),
                    1 => Fault::Error(503, "RequestLimitExceeded".into()),
                    2 => Fault::Error(429, "TooManyRequestsException".into()),
                    3 => Fault::Error(500, "InternalError".into()),
                    4 => Fault::Error(503, "ServiceUnavailable".into()),
                    5 => Fault::Reset,
                    _ => Fault::Latency(Duration::from_millis(50 + next_random(&mut rng) % 400)),
                });
            }
            s.chaos = Some((chaos, rng));
        }
        if let Some(f) = &fault {
            let kind = match f {
                Fault::Error(_, code) => code.clone(),
                Fault::Reset => "reset".into(),
                Fault::Latency(_) => "latency".into(),
            };
            *s.faults.entry(kind).or_insert(0) += 1;
        }
        fault
    };
    match chaos_fault {
        Some(Fault::Error(status, code)) => {
            let response = aws_error(&op, status, &code);
            state.lock().unwrap().calls.push(Call { operation: op, status, request, received, answered: Instant::now() });
            return Ok(response);
        }
        Some(Fault::Reset) => {
            state.lock().unwrap().calls.push(Call { operation: op, status: 0, request, received, answered: Instant::now() });
            return Err(ConnectionReset);
        }
        Some(Fault::Latency(d)) => tokio::time::sleep(d).await,
        None => {}
    }

    let (fail, mut delay) = {
        let mut s = state.lock().unwrap();
        let mut fail = None;
        let mut delay = None;
        for rule in s.rules.iter_mut() {
            match rule {
                Rule::Fail { operation, status, code, times } if *operation == op && *times > 0 => {
                    *times -= 1;
                    fail = Some((*status, code.clone()));
                }
                Rule::DelayResponse { operation, delay: d } if *operation == op => delay = Some(*d),
                _ => {}
            }
        }
        (fail, delay)
    };
    if let Some((status, code)) = fail {
        let response = aws_error(&op, status, &code);
        state.lock().unwrap().calls.push(Call { operation: op, status, request, received, answered: Instant::now() });
        return Ok(response);
    }

    let (rparts, mut rbytes) = if service == "dlm" {
        let op_name = op.trim_start_matches("dlm:");
        let (status, json) = state.lock().unwrap().dlm.answer(op_name, parts.uri.path(), parts.uri.query().unwrap_or(""), &body);
        let mut answer = Response::builder().status(status).header("content-type", "application/json");
        if let Some(code) = json.get("__type").and_then(|c| c.as_str()) {
            answer = answer.header("x-amzn-errortype", code);
        }
        let (rparts, ()) = answer.body(()).unwrap().into_parts();
        (rparts, Bytes::from(json.to_string()))
    } else if op == "ec2:GetConsoleOutput" {
        let instance = console::param(&body_text, "InstanceId").unwrap_or_default().to_string();
        let ruled = state.lock().unwrap().launched.get(&instance).and_then(|(at, c)| c.clone().map(|(text, delay)| if at.elapsed() >= delay { text } else { String::new() }));
        let text = match ruled {
            Some(text) => text,
            None => {
                // What a healthy bootstrap prints: the marker for the version its user data carries.
                let uri = format!("{upstream}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
                let mut ask = Request::builder().method("POST").uri(uri);
                for (k, v) in parts.headers.iter().filter(|(k, _)| *k != hyper::header::CONTENT_LENGTH) {
                    ask = ask.header(k, v);
                }
                let attribute = match client.request(ask.body(Full::new(Bytes::from(console::user_data_request(&instance)))).unwrap()).await {
                    Ok(r) => r.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default(),
                    Err(_) => Bytes::new(),
                };
                console::version_in(&String::from_utf8_lossy(&attribute)).map(|v| console::prepared(&v)).unwrap_or_default()
            }
        };
        let (rparts, body) = console::answer(&instance, &text).into_parts();
        (rparts, body.collect().await.map(|b| b.to_bytes()).unwrap_or_default())
    } else {
        let uri = format!("{upstream}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
        let mut forward = Request::builder().method(parts.method.clone()).uri(uri);
        for (k, v) in parts.headers.iter() {
            forward = forward.header(k, v);
        }
        let response = match client.request(forward.body(Full::new(body)).unwrap()).await {
            Ok(r) => r,
            Err(e) => {
                state.lock().unwrap().calls.push(Call { operation: op, status: 502, request, received, answered: Instant::now() });
                return Ok(Response::builder().status(StatusCode::BAD_GATEWAY).body(Full::new(Bytes::from(e.to_string()))).unwrap());
            }
        };
        let (mut rparts, rbody) = response.into_parts();
        // The body may be rewritten (`NotReadyFor`); hyper sets the length of what is sent.
        rparts.headers.remove(hyper::header::CONTENT_LENGTH);
        (rparts, rbody.collect().await.map(|b| b.to_bytes()).unwrap_or_default())
    };
    let answered = Instant::now();
    {
        let mut s = state.lock().unwrap();
        rbytes = hide_readiness(&mut s, &op, rbytes, answered);
        if let (Some((chaos, _)), Some((describe, _))) = (s.chaos.clone(), stale_after(&op)) {
            if rparts.status.is_success() && chaos.stale_reads > 0 {
                s.stale.insert(describe.to_string(), chaos.stale_reads);
            }
        }
        if op == "ec2:RunInstances" && rparts.status.is_success() {
            let console = s.rules.iter().rev().find_map(|r| match r {
                Rule::Console { text, delay } => Some((text.clone(), *delay)),
                _ => None,
            });
            for id in console::launched(&String::from_utf8_lossy(&rbytes)) {
                s.launched.insert(id, (answered, console.clone()));
            }
        }
        s.calls.push(Call { operation: op.clone(), status: rparts.status.as_u16(), request, received, answered });
        if !is_read_only(&op) && s.hold_change == Some(s.calls.iter().filter(|c| !is_read_only(&c.operation)).count()) {
            delay = Some(Duration::from_secs(120));
        }
    }
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    Ok(Response::from_parts(rparts, Full::new(rbytes)))
}

/// Applies the `NotReadyFor` rules of `op` to an answer from the emulator.
fn hide_readiness(s: &mut State, op: &str, body: Bytes, now: Instant) -> Bytes {
    let mut text = String::from_utf8_lossy(&body).to_string();
    let mut changed = false;
    for (index, rule) in s.rules.iter().enumerate() {
        let Rule::NotReadyFor { operation, ready, not_ready, delay } = rule else { continue };
        if operation != op || !text.contains(ready.as_str()) {
            continue;
        }
        let seen = s.readiness.entry(index).or_insert_with(|| Readiness { operation: op.to_string(), ready_at: now + *delay, noticed_at: None });
        if now < seen.ready_at {
            text = text.replace(ready.as_str(), not_ready);
            changed = true;
        } else if seen.noticed_at.is_none() {
            seen.noticed_at = Some(now);
        }
    }
    if changed { Bytes::from(text) } else { body }
}

impl AwsProxy {
    pub fn start(upstream: &str) -> AwsProxy {
        let state = Arc::new(Mutex::new(State::default()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let upstream = upstream.to_string();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                let client = Client::builder(TokioExecutor::new()).build_http();
                let mut stop_rx = stop_rx;
                loop {
                    let (stream, _) = tokio::select! {
                        _ = &mut stop_rx => break,
                        a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    };
                    let (st, upstream, client) = (st.clone(), upstream.clone(), client.clone());
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| handle(st.clone(), upstream.clone(), client.clone(), req));
                        let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                    });
                }
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        let port = port_rx.recv_timeout(Duration::from_secs(10)).expect("proxy port");
        AwsProxy { port, state, stop: Some(stop_tx), thread: Some(thread) }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Turns seeded random faults on (or off with `None`).
    pub fn chaos(&self, chaos: Option<Chaos>) {
        let mut s = self.state.lock().unwrap();
        s.chaos = chaos.map(|c| {
            let seed = c.seed.max(1);
            (c, seed)
        });
        s.stale.clear();
    }

    /// Injected faults by kind.
    pub fn faults(&self) -> HashMap<String, usize> {
        self.state.lock().unwrap().faults.clone()
    }

    /// Runs `terraform ARGS` in `ws` and kills Terraform and the provider together (SIGKILL to the process group) as
    /// soon as a new `operation` call has reached the emulator, its answer held back: the object exists, and nothing
    /// recorded it. The next run goes through.
    pub fn interrupt_after(&self, ws: &crate::harness::Workspace, args: &[&str], operation: &'static str) {
        assert!(self.interrupt(ws, args, KillPoint::AtCall(operation), Kill::Both), "{operation} was never called: {:?}", self.counts());
    }

    /// Runs `terraform ARGS` in `ws` and kills as `kill` says when `at` comes: right after a new call of an operation,
    /// or its `nth` changing call, reached the emulator (the answer held back: the emulator has acted and nothing
    /// recorded it), or after a time
    /// (whatever it is doing then: a wait, a read, writing state). Returns whether it killed: false when the run
    /// finished first. After
    /// `Kill::TerraformAlone` it asserts that the orphaned provider exits by itself.
    pub fn interrupt(&self, ws: &crate::harness::Workspace, args: &[&str], at: KillPoint, kill: Kill) -> bool {
        let changes = |p: &AwsProxy| p.calls().iter().filter(|c| !is_read_only(&c.operation)).count();
        let before = changes(self);
        match at {
            KillPoint::AtCall(operation) => self.add_rule(Rule::DelayResponse { operation: operation.into(), delay: Duration::from_secs(120) }),
            KillPoint::AtChange(nth) => self.state.lock().unwrap().hold_change = Some(before + nth),
            KillPoint::After(_) => {}
        }
        let operation_before = match at {
            KillPoint::AtCall(operation) => self.count(operation),
            _ => 0,
        };
        let started = std::time::Instant::now();
        let mut child = ws.spawn(args);
        let deadline = started + Duration::from_secs(120);
        let reached = loop {
            let due = match at {
                KillPoint::AtCall(operation) => self.count(operation) > operation_before,
                KillPoint::AtChange(nth) => changes(self) >= before + nth,
                KillPoint::After(d) => started.elapsed() >= d,
            };
            if due {
                break true;
            }
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            assert!(std::time::Instant::now() < deadline, "terraform {} neither finished nor reached {at:?}", args.join(" "));
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut killed = false;
        if reached {
            let mut providers = crate::harness::descendants(child.id(), "terraform-provi");
            // Between its plan and apply walks Terraform runs no provider: killing "the provider" waits for the next.
            while kill == Kill::ProviderAlone && providers.is_empty() && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(5));
                providers = crate::harness::descendants(child.id(), "terraform-provi");
            }
            match kill {
                Kill::Both => {
                    crate::harness::kill_group(&mut child);
                    killed = true;
                }
                Kill::TerraformAlone => {
                    crate::harness::kill_pid(child.id());
                    let _ = child.wait();
                    killed = true;
                    let gone = std::time::Instant::now() + Duration::from_secs(15);
                    while providers.iter().any(|p| crate::harness::is_alive(*p)) {
                        assert!(std::time::Instant::now() < gone, "the provider {providers:?} outlived the Terraform that started it");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                Kill::ProviderAlone if !providers.is_empty() => {
                    for p in &providers {
                        crate::harness::kill_pid(*p);
                    }
                    killed = true;
                    let status = crate::harness::wait_with_deadline(&mut child, Duration::from_secs(60));
                    // With a call in flight Terraform must notice; at a random moment it may need the provider no more.
                    if matches!(at, KillPoint::AtChange(_)) {
                        assert!(!status.success(), "terraform {} succeeded although its provider was killed", args.join(" "));
                    }
                }
                Kill::ProviderAlone => {}
            }
        }
        let _ = child.wait();
        self.state.lock().unwrap().hold_change = None;
        if matches!(at, KillPoint::AtCall(_)) {
            self.clear_rules();
        }
        killed
    }

    pub fn add_rule(&self, rule: Rule) {
        self.state.lock().unwrap().rules.push(rule);
    }

    pub fn clear_rules(&self) {
        let mut s = self.state.lock().unwrap();
        s.rules.clear();
        s.readiness.clear();
    }

    /// What each `NotReadyFor` rule saw, in the order the rules were added.
    pub fn readiness(&self) -> Vec<Readiness> {
        let s = self.state.lock().unwrap();
        let mut seen: Vec<(usize, Readiness)> = s.readiness.iter().map(|(i, r)| (*i, r.clone())).collect();
        seen.sort_by_key(|(i, _)| *i);
        seen.into_iter().map(|(_, r)| r).collect()
    }

    /// How long at least one call was at the emulator (the union of the calls' intervals): the AWS side's share of
    /// a command's wall time, which a provider making no calls would not have.
    pub fn busy(&self) -> Duration {
        let mut spans: Vec<(Instant, Instant)> = self.calls().iter().map(|c| (c.received, c.answered)).collect();
        spans.sort();
        let mut total = Duration::ZERO;
        let mut current: Option<(Instant, Instant)> = None;
        for (start, end) in spans {
            current = match current {
                Some((s, e)) if start <= e => Some((s, e.max(end))),
                Some((s, e)) => {
                    total += e - s;
                    Some((start, end))
                }
                None => Some((start, end)),
            };
        }
        if let Some((s, e)) = current {
            total += e - s;
        }
        total
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.state.lock().unwrap().calls.clear();
    }

    /// How many times each operation was called.
    pub fn counts(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for c in self.calls() {
            *m.entry(c.operation).or_insert(0) += 1;
        }
        m
    }

    pub fn count(&self, operation: &str) -> usize {
        self.calls().iter().filter(|c| c.operation == operation).count()
    }

    /// The lifecycle policies the fake DLM holds, as GetLifecyclePolicy returns them.
    pub fn dlm_policies(&self) -> Vec<serde_json::Value> {
        self.state.lock().unwrap().dlm.policies()
    }
}

impl Drop for AwsProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
