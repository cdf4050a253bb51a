//! Our keys, certificates and PKCS#7 signatures, checked by openssl.

use std::process::Command;

use osimage::sign::{KeyAlgorithm, SigningIdentity};
use osimage::verity::sig::VeritySig;

#[test]
fn openssl_accepts_the_verity_signature() {
    let id = SigningIdentity::generate("Tessera test verity key").unwrap();
    assert_eq!(id.modulus_bits(), Some(2048));
    openssl_accepts_the_verity_signature_of(id);
}

#[test]
fn openssl_accepts_the_verity_signature_of_an_ec_p256_key() {
    let id = SigningIdentity::generate_with("Tessera EC key", KeyAlgorithm::P256).unwrap();
    assert_eq!(id.modulus_bits(), None);
    openssl_accepts_the_verity_signature_of(id);
}

fn openssl_accepts_the_verity_signature_of(id: SigningIdentity) {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, id.cert_pem().unwrap()).unwrap();
    std::fs::write(&key, id.key_pem().unwrap()).unwrap();

    // The pair reloads, and openssl reads both.
    let reloaded = SigningIdentity::load(&key, &cert).unwrap();
    assert_eq!(reloaded.cert_fingerprint(), id.cert_fingerprint());
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success());
    let fp = String::from_utf8_lossy(&out.stdout)
        .to_lowercase()
        .replace(':', "");
    assert!(fp.contains(&hex::encode(id.cert_fingerprint())), "{fp}");

    let root = [0xabu8; 32];
    let sig = VeritySig::sign(&root, &id).unwrap();
    assert_eq!(sig.root_hash, hex::encode(root));
    let part = sig.to_partition();
    assert_eq!(part.len() % 4096, 0);
    assert_eq!(VeritySig::from_partition(&part).unwrap(), sig);

    let p7 = dir.path().join("sig.p7s");
    let content = dir.path().join("roothash");
    std::fs::write(&p7, sig.signature_der().unwrap()).unwrap();
    std::fs::write(&content, &sig.root_hash).unwrap();
    let verify = |content: &std::path::Path| {
        Command::new("openssl")
            .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
            .arg(&p7)
            .arg("-content")
            .arg(content)
            .arg("-CAfile")
            .arg(&cert)
            .args(["-out", "/dev/null"])
            .output()
            .unwrap()
    };
    let out = verify(&content);
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A different root hash must not verify.
    std::fs::write(&content, hex::encode([0xacu8; 32])).unwrap();
    assert!(!verify(&content).status.success());

    // Signing is deterministic: the same key over the same hash gives the same bytes.
    assert_eq!(VeritySig::sign(&root, &id).unwrap(), sig);
}

#[test]
fn mismatched_key_and_certificate_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let a = SigningIdentity::generate("a").unwrap();
    let b = SigningIdentity::generate("b").unwrap();
    std::fs::write(dir.path().join("a.key"), a.key_pem().unwrap()).unwrap();
    std::fs::write(dir.path().join("b.crt"), b.cert_pem().unwrap()).unwrap();
    std::fs::write(dir.path().join("junk.crt"), "not a certificate").unwrap();
    let err =
        SigningIdentity::load(&dir.path().join("a.key"), &dir.path().join("b.crt")).unwrap_err();
    assert!(err.to_string().contains("does not belong to key"), "{err}");
    let err =
        SigningIdentity::load(&dir.path().join("a.key"), &dir.path().join("junk.crt")).unwrap_err();
    assert!(err.to_string().contains("junk.crt"), "{err}");
    let err =
        SigningIdentity::load(&dir.path().join("nope.key"), &dir.path().join("b.crt")).unwrap_err();
    assert!(err.to_string().contains("nope.key: cannot read"), "{err}");
    // A key that cannot be read (a directory where the file should be), and one that
    // is not a key.
    std::fs::create_dir(dir.path().join("dir.key")).unwrap();
    let err =
        SigningIdentity::load(&dir.path().join("dir.key"), &dir.path().join("b.crt")).unwrap_err();
    assert!(err.to_string().contains("dir.key: cannot read"), "{err}");
    std::fs::write(
        dir.path().join("junk.key"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err =
        SigningIdentity::load(&dir.path().join("junk.key"), &dir.path().join("b.crt")).unwrap_err();
    assert!(
        err.to_string()
            .contains("junk.key: not a usable private key"),
        "{err}"
    );
}

#[test]
fn pkcs7_verification_accepts_ours_and_openssls_and_rejects_the_rest() {
    for algorithm in [KeyAlgorithm::Rsa2048, KeyAlgorithm::P256] {
        pkcs7_verification_of(algorithm);
    }
}

fn pkcs7_verification_of(algorithm: KeyAlgorithm) {
    use osimage::sign::{load_cert, verify_pkcs7_detached};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let id = SigningIdentity::generate_with("vendor", algorithm).unwrap();
    std::fs::write(d.join("cert.pem"), id.cert_pem().unwrap()).unwrap();
    std::fs::write(d.join("key.pem"), id.key_pem().unwrap()).unwrap();
    let cert = load_cert(&d.join("cert.pem")).unwrap();
    let content = b"abc  tessera_2.efi\n";

    let ours = id.sign_pkcs7_detached(content).unwrap();
    verify_pkcs7_detached(&ours, content, &cert).unwrap();
    assert!(verify_pkcs7_detached(&ours, b"tampered", &cert).is_err());

    // openssl's own detached signature, with its default signed attributes.
    std::fs::write(d.join("content"), content).unwrap();
    let out = Command::new("openssl")
        .args(["cms", "-sign", "-binary", "-outform", "DER", "-in"])
        .arg(d.join("content"))
        .arg("-signer")
        .arg(d.join("cert.pem"))
        .arg("-inkey")
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("openssl.p7s"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = std::fs::read(d.join("openssl.p7s")).unwrap();
    verify_pkcs7_detached(&theirs, content, &cert).unwrap();

    // Another key's certificate is not trusted, and garbage is an error.
    let other = SigningIdentity::generate("other").unwrap();
    std::fs::write(d.join("other.pem"), other.cert_pem().unwrap()).unwrap();
    let other_cert = load_cert(&d.join("other.pem")).unwrap();
    assert!(verify_pkcs7_detached(&ours, content, &other_cert).is_err());
    assert!(verify_pkcs7_detached(b"junk", content, &cert).is_err());
}
