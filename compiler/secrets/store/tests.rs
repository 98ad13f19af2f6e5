use super::*;
use crate::resolve::{Admin, Spanned};
use crate::source::Span;

fn admin(name: &str, key: &str) -> Admin {
    Admin {
        name: Spanned::new(name.into(), Span::default()),
        key: Spanned::new(key.into(), Span::default()),
    }
}

fn age_admin(name: &str) -> (Admin, age::x25519::Identity) {
    let id = age::x25519::Identity::generate();
    (admin(name, &id.to_public().to_string()), id)
}

/// An ssh-ed25519 key pair made by ssh-keygen in `dir` (with `passphrase`):
/// (private key file, public key line).
fn ssh_key(dir: &Path, name: &str, passphrase: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs (openssh-client)");
    assert!(st.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("the .pub");
    (key, public.trim().to_string())
}

fn entry(value: &str) -> Entry {
    Entry {
        value: value.into(),
        changed: 1_796_000_000,
        by: "alice".into(),
    }
}

#[test]
fn each_admin_decrypts_and_nobody_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::of(dir.path());
    assert!(!store.exists());
    let (alice, alice_id) = age_admin("alice");
    let keys = tempfile::tempdir().expect("tempdir");
    let (bob_file, bob_pub) = ssh_key(keys.path(), "bob", "");
    let bob = admin("bob", &bob_pub);
    store
        .write(
            "app_pw",
            &entry("s3cret\nwith a newline"),
            &[alice.clone(), bob.clone()],
        )
        .expect("written");
    assert!(store.exists());
    assert_eq!(store.names().expect("names"), ["app_pw"]);
    // the file is armoured text and holds no value
    let text = std::fs::read_to_string(dir.path().join("secrets/app_pw.age")).expect("read");
    assert!(
        text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
        "{text}"
    );
    assert!(!text.contains("s3cret"));
    // alice (age) and bob (his SSH key file) read it
    let e = store
        .read("app_pw", &Identities::from_age(alice_id.clone()))
        .expect("alice decrypts");
    assert_eq!(
        (e.value.as_str(), e.changed, e.by.as_str()),
        ("s3cret\nwith a newline", 1_796_000_000, "alice")
    );
    let bob_ids = Identities::load(std::slice::from_ref(&bob_file), None).expect("bob's key loads");
    assert_eq!(
        store.read("app_pw", &bob_ids).expect("bob decrypts").value,
        "s3cret\nwith a newline"
    );
    // carol cannot, and is told who can
    let (_, carol_id) = age_admin("carol");
    let err = store
        .read("app_pw", &Identities::from_age(carol_id))
        .expect_err("carol cannot");
    assert_eq!(err.code, "E0741");
    assert!(
        err.message.contains("it is encrypted to: alice, bob"),
        "{}",
        err.message
    );

    // bob leaves: rekey to alice alone; bob's key no longer opens the new file
    let removed = store
        .rekey(&bob_ids, std::slice::from_ref(&alice))
        .expect("bob can still rekey before he is gone");
    assert_eq!(removed, ["bob"]);
    let err = store.read("app_pw", &bob_ids).expect_err("bob is out");
    assert_eq!(err.code, "E0741");
    assert!(
        err.message.contains("it is encrypted to: alice"),
        "{}",
        err.message
    );
    assert_eq!(
        store.recipients().into_keys().collect::<Vec<_>>(),
        ["alice"]
    );
    // the value and its date survive the rekey
    let e = store
        .read("app_pw", &Identities::from_age(alice_id))
        .expect("alice still decrypts");
    assert_eq!(
        (e.value.as_str(), e.changed),
        ("s3cret\nwith a newline", 1_796_000_000)
    );
}

#[test]
fn bad_files_names_and_keys_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::of(dir.path());
    let (alice, alice_id) = age_admin("alice");
    let ids = Identities::from_age(alice_id);
    store
        .write("pg_repl", &entry("x"), std::slice::from_ref(&alice))
        .expect("written");
    // truncated, then garbage
    let path = dir.path().join("secrets/pg_repl.age");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, &text[..text.len() / 2]).expect("cut");
    let err = store.read("pg_repl", &ids).expect_err("a cut file");
    assert_eq!(err.code, "E0740", "{}", err.message);
    std::fs::write(&path, "hello\n").expect("junk");
    assert_eq!(store.read("pg_repl", &ids).expect_err("junk").code, "E0740");
    // names
    for bad in ["App", "-a", "", "../x", "a b", "a.b"] {
        assert_eq!(
            store
                .write(bad, &entry("x"), std::slice::from_ref(&alice))
                .expect_err(bad)
                .code,
            "E0743"
        );
    }
    std::fs::write(dir.path().join("secrets/Bad-Name.age"), "x").expect("write");
    assert_eq!(store.names().expect_err("a bad file name").code, "E0740");
    std::fs::remove_file(dir.path().join("secrets/Bad-Name.age")).expect("rm");
    // a secret that is not there names the command that adds it
    let err = store.read("share_key", &ids).expect_err("missing");
    assert_eq!(err.code, "E0730");
    assert!(format!("{:?}", err.help).contains("infra secrets set share_key"));
    // nobody to encrypt to
    assert_eq!(
        store
            .write("x", &entry("x"), &[])
            .expect_err("no admins")
            .code,
        "E0747"
    );
    // public keys
    assert!(parse_recipient("ssh-dss AAAAB3NzaC1kc3M=").is_err());
    assert!(parse_recipient("hello").is_err());
    assert!(parse_recipient(&alice.key.value).is_ok());

    // identity files: readable by others, a public key, a wrong passphrase
    let keys = tempfile::tempdir().expect("tempdir");
    let (file, public) = ssh_key(keys.path(), "k", "correct horse");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = Identities::load(std::slice::from_ref(&file), None)
        .err()
        .expect("mode 0644 refused");
    assert_eq!(err.code, "E0742");
    assert!(
        err.message.contains("readable by others (mode 0644)"),
        "{}",
        err.message
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let pubfile = file.with_extension("pub");
    std::fs::set_permissions(&pubfile, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(
        Identities::load(&[pubfile], None)
            .err()
            .expect("a .pub")
            .code,
        "E0742"
    );
    store
        .write("pg_repl", &entry("v"), &[alice, admin("k", &public)])
        .expect("written");
    let wrong = Identities::load(std::slice::from_ref(&file), Some("wrong".into())).expect("loads");
    let err = store
        .read("pg_repl", &wrong)
        .expect_err("a wrong passphrase");
    assert!(
        err.code == "E0742" || err.code == "E0741",
        "{} {}",
        err.code,
        err.message
    );
    let right = Identities::load(&[file], Some("correct horse".into())).expect("loads");
    assert_eq!(
        store
            .read("pg_repl", &right)
            .expect("the passphrase opens it")
            .value,
        "v"
    );
}
