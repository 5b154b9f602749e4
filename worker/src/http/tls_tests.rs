//! Certificate loading and reloading, with keys and certificates made by the `openssl` CLI.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use super::*;

/// Runs `openssl` with `args` in `dir`; panics with its output on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed certificate `<name>.crt` with its key `<name>.key` (PKCS#8) made with `newkey`
/// (`ec` or `rsa:2048`).
fn self_signed(dir: &Path, name: &str, newkey: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (format!("{name}.crt"), format!("{name}.key"));
    let mut args = vec!["req", "-x509", "-newkey", newkey];
    if newkey == "ec" {
        args.extend(["-pkeyopt", "ec_paramgen_curve:P-256"]);
    }
    args.extend([
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &key,
        "-out",
        &cert,
    ]);
    openssl(dir, &args);
    (dir.join(cert), dir.join(key))
}

fn load(cert: &Path, key: &Path) -> Result<TlsFiles, TlsError> {
    TlsFiles::load(cert, key, &Families::new())
}

fn served(files: &TlsFiles) -> Vec<u8> {
    files.current.get().cert[0].to_vec()
}

#[test]
fn pkcs8_rsa_and_ec_keys_load() {
    let dir = tempfile::tempdir().unwrap();
    let (ec_cert, ec_key) = self_signed(dir.path(), "ec", "ec");
    let (rsa_cert, rsa_key) = self_signed(dir.path(), "rsa", "rsa:2048");
    load(&ec_cert, &ec_key).expect("EC, PKCS#8");
    load(&rsa_cert, &rsa_key).expect("RSA, PKCS#8");
    // The traditional encodings: PKCS#1 (`BEGIN RSA PRIVATE KEY`), SEC1 (`BEGIN EC PRIVATE KEY`).
    openssl(
        dir.path(),
        &["rsa", "-in", "rsa.key", "-traditional", "-out", "rsa1.key"],
    );
    openssl(dir.path(), &["ec", "-in", "ec.key", "-out", "sec1.key"]);
    for (cert, key, begins) in [
        (&rsa_cert, "rsa1.key", "-----BEGIN RSA PRIVATE KEY"),
        (&ec_cert, "sec1.key", "-----BEGIN EC PRIVATE KEY"),
    ] {
        let key = dir.path().join(key);
        assert!(std::fs::read_to_string(&key).unwrap().starts_with(begins));
        load(cert, &key).expect(begins);
    }
}

#[test]
fn unusable_files_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "a", "ec");
    let (other_cert, _) = self_signed(dir.path(), "b", "ec");
    let missing = dir.path().join("missing.crt");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not PEM at all\n").unwrap();

    let err = load(&missing, &key).err().expect("missing certificate");
    assert!(
        matches!(
            err,
            TlsError::Read {
                what: "certificate",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("missing.crt"), "{err}");

    let err = load(&garbage, &key).err().expect("no certificate in it");
    assert!(matches!(err, TlsError::Certificate { .. }), "{err}");
    assert!(err.to_string().contains("garbage.pem"), "{err}");

    let err = load(&cert, &garbage).err().expect("no key in it");
    assert!(matches!(err, TlsError::Key { .. }), "{err}");
    assert!(err.to_string().contains("garbage.pem"), "{err}");

    // The certificate as the key: PEM, but no private key.
    let err = load(&cert, &cert).err().expect("a certificate is no key");
    assert!(matches!(err, TlsError::Key { .. }), "{err}");

    let err = load(&other_cert, &key)
        .err()
        .expect("another certificate's key");
    assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("b.crt"), "{err}");
}

#[test]
fn a_changed_pair_is_served_and_a_bad_one_keeps_the_last_good() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "live", "ec");
    let mut files = load(&cert, &key).unwrap();
    let first = served(&files);
    let read = || PairBytes::read(&cert, &key);
    assert!(!files.reload(read()), "unchanged files change nothing");

    // A renewal: a new pair replaces both files.
    let (new_cert, new_key) = self_signed(dir.path(), "renewed", "ec");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    assert!(files.reload(read()));
    let second = served(&files);
    assert_ne!(second, first, "the renewed certificate is served");
    assert_eq!(files.valid.get(), 1);

    // Half a renewal: the certificate of another key. Refused, the last good pair stays.
    let (stray_cert, _) = self_signed(dir.path(), "stray", "ec");
    std::fs::copy(&stray_cert, &cert).unwrap();
    assert!(!files.reload(read()));
    assert_eq!(served(&files), second);
    assert_eq!(files.valid.get(), 0);
    assert!(!files.reload(read()), "the same bad files are not retried");

    // A deleted file is no different.
    std::fs::remove_file(&key).unwrap();
    assert!(!files.reload(read()));
    assert_eq!(served(&files), second);
}

#[test]
fn the_listener_offers_h2_before_http11() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "a", "ec");
    let config = load(&cert, &key).unwrap().server_config().unwrap();
    assert_eq!(
        config.alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}
