//! The rig's nginx, fetched from with a Rust HTTP client.
#![allow(clippy::result_large_err)] // ureq 2's error type, not ours

use std::io::Read;
use std::time::Duration;

use tessera_rig::Nginx;
use tessera_rig::nginx::Fault;

fn payload() -> Vec<u8> {
    (0..1_000_000u32).map(|i| (i * 31 % 251) as u8).collect()
}

fn get(url: &str) -> Result<ureq::Response, ureq::Error> {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build()
        .get(url)
        .call()
}

#[test]
fn serves_a_file_and_a_byte_range() {
    let root = tempfile::tempdir().unwrap();
    let data = payload();
    std::fs::write(root.path().join("image.raw"), &data).unwrap();
    let nginx = Nginx::serve(root.path()).unwrap();
    assert!(nginx.base_url().starts_with("http://127.0.0.1:"));

    let resp = get(&nginx.url("image.raw")).unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).unwrap();
    assert_eq!(body, data);

    let resp = ureq::get(&nginx.url("image.raw"))
        .set("Range", "bytes=1000-1999")
        .call()
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(
        resp.header("Content-Range"),
        Some("bytes 1000-1999/1000000")
    );
    let mut part = Vec::new();
    resp.into_reader().read_to_end(&mut part).unwrap();
    assert_eq!(part, &data[1000..2000]);

    // nginx logs a request in its last phase, after the body is sent: the client can
    // have it all before the line is written.
    let logged = |n: &Nginx| n.access_log().contains("\"GET /image.raw HTTP/1.1\" 206");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !logged(&nginx) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(logged(&nginx), "{}", nginx.access_log());
}

#[test]
fn faults_status_drop_and_stop_mid_transfer() {
    let root = tempfile::tempdir().unwrap();
    let data = payload();
    std::fs::write(root.path().join("image.raw"), &data).unwrap();
    let mut nginx = Nginx::serve_with_faults(
        root.path(),
        vec![
            Fault::Status {
                prefix: "broken".into(),
                code: 500,
            },
            Fault::Drop {
                prefix: "hangup".into(),
            },
            Fault::Slow {
                prefix: "slow".into(),
                bytes_per_sec: 50_000,
                after: 100_000,
            },
        ],
    )
    .unwrap();

    match get(&nginx.url("broken/image.raw")) {
        Err(ureq::Error::Status(500, _)) => {}
        other => panic!("expected a 500, got {other:?}"),
    }
    assert!(matches!(
        get(&nginx.url("hangup/image.raw")),
        Err(ureq::Error::Transport(_))
    ));

    // Start a slow download, kill the server part-way, and see a short body.
    let resp = get(&nginx.url("slow/image.raw")).unwrap();
    let mut reader = resp.into_reader();
    let mut got = vec![0u8; 150_000];
    reader.read_exact(&mut got).unwrap();
    nginx.stop();
    let mut rest = Vec::new();
    let result = reader.read_to_end(&mut rest);
    let total = got.len() + rest.len();
    assert!(
        result.is_err() || total < data.len(),
        "transfer must be cut short"
    );
    assert_eq!(&got[..], &data[..150_000]);

    // The same URL works again after a restart, and a Range request resumes.
    nginx.restart().unwrap();
    let resp = ureq::get(&nginx.url("image.raw"))
        .set("Range", &format!("bytes={total}-"))
        .call()
        .unwrap();
    assert_eq!(resp.status(), 206);
    let mut tail = Vec::new();
    resp.into_reader().read_to_end(&mut tail).unwrap();
    assert_eq!(tail, &data[total..]);
}
