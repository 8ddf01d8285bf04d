//! A user's wallet: their key and the capabilities they hold.
//!
//! On disk it is a directory readable by its owner only (mode 0700) with files of mode
//! 0600: `key` (the secret key, hex), `caps` (one capability per line, in text form) and
//! `lock`. Changes happen under an exclusive lock on `lock`, after reading what other
//! processes added to `caps` since, so several processes using one wallet at once lose
//! nothing. A capability added is one line appended (its cost does not grow with the
//! wallet); forgetting rewrites the file. The command line keeps it at `--wallet DIR`,
//! `$CLOUDS_WALLET`, or `~/.clouds/wallet`; library clients get one in memory unless they
//! open one.
//!
//! For each object the wallet offers, of the capabilities that have not expired, the one
//! that suits the call best (see [`suitability`]).

use capability::{Grant, KeyPair, NodeCert, PublicKey, Token};
use clouds::{Cap, InvokeError, ObjectId, Rights};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A user's key and the capabilities they hold, kept in a directory readable by them only
/// (or in memory), and the nodes they trust (trust on first use, or a cluster's authority).
pub struct Wallet {
    /// `None`: kept in memory only.
    dir: Option<PathBuf>,
    key: KeyPair,
    /// std `Mutex`: one map operation (and, on disk, one file write) at a time.
    caps: Mutex<Caps>,
}

/// The capabilities held, and how far this process has read the `caps` file.
#[derive(Default)]
struct Caps {
    by_object: HashMap<ObjectId, Vec<Held>>,
    /// Bytes of the file read (whole lines).
    read: u64,
    /// Which file they were read from (device, inode): a rewrite is another file.
    file: Option<(u64, u64)>,
}

#[derive(Clone)]
struct Held {
    rights: Rights,
    expires: Option<u64>,
    cap: Cap,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Wallet {
    /// A wallet with a fresh key, in memory only.
    pub fn ephemeral() -> Wallet {
        Wallet { dir: None, key: KeyPair::generate(), caps: Mutex::new(Caps::default()) }
    }

    /// Where the command line keeps the wallet unless told: `~/.clouds/wallet`.
    pub fn default_dir() -> PathBuf {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        home.join(".clouds").join("wallet")
    }

    /// Opens the wallet in `dir`, making it (and a key) if there is none.
    pub fn open(dir: &Path) -> Result<Wallet, String> {
        use std::os::unix::fs::DirBuilderExt as _;
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create the wallet {}: {e}", dir.display()))?;
        }
        let key_path = dir.join("key");
        let key = if key_path.exists() {
            let text =
                std::fs::read_to_string(&key_path).map_err(|e| format!("cannot read {}: {e}", key_path.display()))?;
            let secret = hex::decode(text.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| format!("{} does not hold a key (expected 64 hex digits)", key_path.display()))?;
            KeyPair::from_secret(secret)
        } else {
            let key = KeyPair::generate();
            write_private(&key_path, &format!("{}\n", hex::encode(key.secret_bytes())))?;
            key
        };
        let mut caps = Caps::default();
        catch_up(&dir.join("caps"), &mut caps, false)?;
        Ok(Wallet { dir: Some(dir.to_path_buf()), key, caps: Mutex::new(caps) })
    }

    /// The wallet's key pair: what the handshake proves.
    pub fn key(&self) -> &KeyPair {
        &self.key
    }

    /// The wallet's public key: what others grant capabilities to.
    pub fn public(&self) -> PublicKey {
        self.key.public()
    }

    /// Checks that the node at `addr`, which proved `cert` on its connection, belongs to
    /// the cluster this wallet trusts: the authority whose certificate the first node it
    /// reached presented (trust on first use, kept in `DIR/authority`). An in-memory
    /// wallet trusts what it meets.
    pub fn trust(&self, cert: Option<&NodeCert>, addr: std::net::SocketAddr) -> Result<(), InvokeError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let path = dir.join("authority");
        let trusted: Option<PublicKey> = std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse().ok());
        let forget = format!("remove {} to trust another cluster", path.display());
        match (trusted, cert) {
            (Some(trusted), Some(cert)) if cert.authority == trusted => Ok(()),
            (Some(trusted), Some(cert)) => Err(InvokeError::Denied {
                reason: format!(
                    "the node at {addr} ({}) belongs to another cluster (authority {}) than the one this \
                     wallet trusts since it first connected (authority {trusted}); {forget}",
                    cert.node, cert.authority
                ),
            }),
            (Some(trusted), None) => Err(InvokeError::Denied {
                reason: format!(
                    "the node at {addr} presents no certificate, and this wallet trusts the cluster of \
                     authority {trusted}; {forget}"
                ),
            }),
            (None, Some(cert)) => {
                write_private(&path, &format!("{}\n", cert.authority)).map_err(InvokeError::storage)?;
                Ok(())
            }
            (None, None) => Ok(()),
        }
    }

    /// Trusts the cluster of `authority` from now on (the one a `clouds cluster up` with this
    /// wallet made or runs), instead of any other.
    pub fn trust_authority(&self, authority: &PublicKey) -> Result<(), String> {
        match &self.dir {
            Some(dir) => write_private(&dir.join("authority"), &format!("{authority}\n")),
            None => Ok(()),
        }
    }

    /// Keeps `cap` (once). Refused if it is not a capability of this format.
    pub fn add(&self, cap: &Cap) -> Result<(), String> {
        let token = Token::from_cap(cap).map_err(|e| format!("not a capability: {e}"))?;
        let mut caps = self.caps.lock().expect("wallet mutex");
        let Some(dir) = &self.dir else {
            insert(&mut caps.by_object, token.grant(), cap);
            return Ok(());
        };
        let _locked = lock(dir)?;
        let path = dir.join("caps");
        catch_up(&path, &mut caps, true)?;
        if insert(&mut caps.by_object, token.grant(), cap) {
            use std::io::Write as _;
            let line = format!("{}\n", cap.to_text());
            let mut file = private_file(&path, Open::Append)?;
            file.write_all(line.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            read_up_to_end(&path, &mut caps)?;
        }
        Ok(())
    }

    /// Forgets every capability for `id` (they were revoked, or the object is gone).
    pub fn forget(&self, id: ObjectId) -> Result<(), String> {
        let mut caps = self.caps.lock().expect("wallet mutex");
        let Some(dir) = &self.dir else {
            caps.by_object.remove(&id);
            return Ok(());
        };
        let _locked = lock(dir)?;
        let path = dir.join("caps");
        catch_up(&path, &mut caps, true)?;
        if caps.by_object.remove(&id).is_some() {
            save(dir, &caps.by_object)?;
            read_up_to_end(&path, &mut caps)?;
        }
        Ok(())
    }

    /// The unexpired capability held for `id` that suits a call needing nothing in
    /// particular best.
    pub fn best(&self, id: ObjectId) -> Option<Cap> {
        self.best_for(id, Rights::NONE).map(|(cap, _)| cap)
    }

    /// The unexpired capability held for `id` that suits a call needing `needed` best, with
    /// the rights it grants.
    pub fn best_for(&self, id: ObjectId, needed: Rights) -> Option<(Cap, Rights)> {
        let now = now();
        let caps = self.caps.lock().expect("wallet mutex");
        caps.by_object
            .get(&id)?
            .iter()
            .filter(|h| h.expires.is_none_or(|e| e >= now))
            .max_by_key(|h| suitability(h.rights, needed))
            .map(|h| (h.cap.clone(), h.rights))
    }

    /// Every capability held, by object.
    pub fn all(&self) -> Vec<Token> {
        let caps = self.caps.lock().expect("wallet mutex");
        let mut out: Vec<Token> =
            caps.by_object.values().flatten().filter_map(|h| Token::from_cap(&h.cap).ok()).collect();
        out.sort_by_key(|t| t.grant().object);
        out
    }
}

/// Takes the wallet's lock (released when the file returned is dropped).
fn lock(dir: &Path) -> Result<std::fs::File, String> {
    let path = dir.join("lock");
    let file = private_file(&path, Open::Keep)?;
    file.lock().map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
    Ok(file)
}

/// Brings `caps` up to what the `caps` file at `path` holds: the lines added since it was
/// last read, or all of them if the file was rewritten meanwhile (by a `forget`). A last
/// line not finished is left for later; under the wallet's lock (`locked`) no one can be
/// writing it, so it is what a writer that died mid-line left, and it is cut off.
fn catch_up(path: &Path, caps: &mut Caps, locked: bool) -> Result<(), String> {
    use std::io::{Read as _, Seek as _};
    use std::os::unix::fs::MetadataExt as _;
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            *caps = Caps::default();
            return Ok(());
        }
        Err(e) => return Err(cannot(e)),
    };
    let meta = file.metadata().map_err(cannot)?;
    let id = Some((meta.dev(), meta.ino()));
    if caps.file != id || meta.len() < caps.read {
        *caps = Caps { file: id, ..Caps::default() };
    }
    file.seek(std::io::SeekFrom::Start(caps.read)).map_err(cannot)?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(cannot)?;
    let whole = text.rfind('\n').map_or(0, |at| at + 1);
    for line in text[..whole].lines().filter(|l| !l.trim().is_empty()) {
        let not_one = |e: String| format!("{}: a line is not a capability: {e}", path.display());
        let cap = Cap::from_text(line).map_err(not_one)?;
        let token = Token::from_cap(&cap).map_err(|e| not_one(e.to_string()))?;
        insert(&mut caps.by_object, token.grant(), &cap);
    }
    caps.read += whole as u64;
    if locked && whole < text.len() {
        let file = private_file(path, Open::Keep)?;
        file.set_len(caps.read).map_err(|e| format!("cannot mend {}: {e}", path.display()))?;
    }
    Ok(())
}

/// After this process wrote the `caps` file (under the lock): all of it is known.
fn read_up_to_end(path: &Path, caps: &mut Caps) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    caps.file = Some((meta.dev(), meta.ino()));
    caps.read = meta.len();
    Ok(())
}

fn save(dir: &Path, caps: &HashMap<ObjectId, Vec<Held>>) -> Result<(), String> {
    let mut text = String::new();
    for held in caps.values().flatten() {
        text.push_str(&held.cap.to_text());
        text.push('\n');
    }
    // Write aside, then rename: a crash leaves the old file or the new one.
    let tmp = dir.join("caps.tmp");
    write_private(&tmp, &text)?;
    std::fs::rename(&tmp, dir.join("caps")).map_err(|e| format!("cannot update the wallet: {e}"))
}

/// How well a capability granting `rights` suits a call needing `needed` (greater is
/// better): one that has the right first; then one with more of `read` and `write`, what
/// methods need (an invocation's need is not known before the node looks the method up);
/// then one with more rights.
pub fn suitability(rights: Rights, needed: Rights) -> (bool, u32, u32) {
    (rights.contains(needed), rights.intersection(Rights::READ.union(Rights::WRITE)).count(), rights.count())
}

/// Adds `cap`, which grants `grant`, unless it is held already; says whether it was added.
fn insert(caps: &mut HashMap<ObjectId, Vec<Held>>, grant: &Grant, cap: &Cap) -> bool {
    let held = caps.entry(grant.object).or_default();
    if held.iter().any(|h| h.cap == *cap) {
        return false;
    }
    held.push(Held { rights: grant.rights, expires: grant.expires, cap: cap.clone() });
    true
}

/// How `private_file` opens a file: keeping what it holds, emptied, or to append to.
#[derive(Clone, Copy, PartialEq)]
enum Open {
    Keep,
    Empty,
    Append,
}

/// Opens (making it if needed) a file readable by its owner only.
fn private_file(path: &Path, how: Open) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(how != Open::Append)
        .append(how == Open::Append)
        .create(true)
        .truncate(how == Open::Empty)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    private_file(path, Open::Empty)?
        .write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use capability::{Grant, NodeCert};
    use clouds::NodeId;

    fn token(object: ObjectId, rights: Rights, holder: PublicKey, expires: Option<u64>) -> Token {
        let (authority, node) = (KeyPair::generate(), KeyPair::generate());
        let cert = NodeCert::issue(&authority, NodeId(1), node.public());
        Token::issue(cert, &node, Grant { object, rights, methods: None, expires, epoch: 0, holder })
    }

    #[test]
    fn a_wallet_keeps_its_key_and_capabilities_private_and_offers_the_best_suited() {
        let dir = std::env::temp_dir().join(format!("clouds-wallet-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let w = Wallet::open(&dir).unwrap();
        let object = ObjectId::new(NodeId(1));
        let read = token(object, Rights::READ, w.public(), None);
        let all = token(object, Rights::ALL, w.public(), None);
        let expired = token(object, Rights::ALL, w.public(), Some(1));
        for t in [&read, &all, &expired] {
            w.add(&t.to_cap()).unwrap();
        }
        w.add(&read.to_cap()).unwrap();
        assert_eq!(w.best(object), Some(all.to_cap()));
        let admin = token(object, Rights::ADMIN, w.public(), None);
        w.add(&admin.to_cap()).unwrap();
        w.forget(object).unwrap();
        for t in [&read, &admin] {
            w.add(&t.to_cap()).unwrap();
        }
        assert_eq!(w.best(object), Some(read.to_cap()), "methods need read or write");
        assert_eq!(w.best_for(object, Rights::ADMIN).map(|(c, _)| c), Some(admin.to_cap()));
        w.add(&all.to_cap()).unwrap();
        w.add(&expired.to_cap()).unwrap();
        assert!(w.add(&Cap::from_bytes(vec![1, 2, 3])).unwrap_err().contains("not a capability"));

        // A second process adding to the same wallet at the same time loses nothing.
        let other = Wallet::open(&dir).unwrap();
        let elsewhere = ObjectId::new(NodeId(1));
        let (one, two) =
            (token(elsewhere, Rights::READ, w.public(), None), token(elsewhere, Rights::WRITE, w.public(), None));
        other.add(&one.to_cap()).unwrap();
        w.add(&two.to_cap()).unwrap();
        assert_eq!(Wallet::open(&dir).unwrap().all().iter().filter(|t| t.grant().object == elsewhere).count(), 2);
        assert_eq!(w.all().iter().filter(|t| t.grant().object == elsewhere).count(), 2, "w read what other added");
        other.forget(elsewhere).unwrap();

        let again = Wallet::open(&dir).unwrap();
        assert_eq!(again.public(), w.public());
        assert_eq!(again.all().len(), 4, "each capability kept once");
        assert_eq!(again.best(object), Some(all.to_cap()));
        again.forget(object).unwrap();
        assert_eq!(Wallet::open(&dir).unwrap().best(object), None);

        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&dir), mode(&dir.join("key")), mode(&dir.join("caps"))), (0o700, 0o600, 0o600));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Adding appends one line and leaves the rest of the file as it was; a line a writer
    /// left unfinished (it died mid-line) is skipped on open and cut off at the next change.
    #[test]
    fn adding_appends_a_line_and_a_line_left_unfinished_is_cut_off() {
        let dir = std::env::temp_dir().join(format!("clouds-wallet-append-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let w = Wallet::open(&dir).unwrap();
        let caps: Vec<Token> =
            (0..3).map(|_| token(ObjectId::new(NodeId(1)), Rights::READ, w.public(), None)).collect();
        w.add(&caps[0].to_cap()).unwrap();
        let file = dir.join("caps");
        let before = std::fs::read(&file).unwrap();
        w.add(&caps[1].to_cap()).unwrap();
        let after = std::fs::read(&file).unwrap();
        assert_eq!(&after[..before.len()], &before[..], "the lines there stay as they were");
        assert_eq!(after.len() - before.len(), caps[1].to_text().len() + 1, "one line more");
        // A writer died halfway through a line.
        let half = &caps[2].to_text()[..40];
        std::fs::write(&file, [&after[..], half.as_bytes()].concat()).unwrap();
        let reopened = Wallet::open(&dir).unwrap();
        assert_eq!(reopened.all().len(), 2, "the unfinished line is not read");
        reopened.add(&caps[2].to_cap()).unwrap();
        let again = Wallet::open(&dir).unwrap();
        assert_eq!(again.all().len(), 3, "and it was cut off before the next line went in");
        assert_eq!(again.best(caps[2].grant().object), Some(caps[2].to_cap()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
