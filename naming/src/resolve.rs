//! Walking paths through directory objects. Each step is an ordinary invocation by the
//! caller's thread, so these work the same from client code and from inside an object.
//!
//! Each step presents the capability the previous entry handed out (a client presents its
//! wallet's instead when that is stronger). Directories that `bind` creates on the way are
//! bound with a read capability, so whoever can read a directory can walk below it.

use crate::directory::{Directory, Entry, NameError};
use crate::path::Path;
use clouds::{Ctx, InvokeError, RawRef, Ref, Rights};

const DIRECTORY: &str = "Directory";

/// The entry `path` names. The root resolves to the root directory itself.
pub async fn resolve(ctx: &Ctx, root: &RawRef, path: &Path) -> Result<Entry, InvokeError> {
    let mut current = Entry { id: root.id, class: DIRECTORY.into(), cap: root.cap.clone() };
    let mut walked = Path::root();
    for component in path.components() {
        let dir = as_directory(&current, &walked)?;
        current = dir
            .lookup(ctx, component.clone())
            .await?
            .ok_or_else(|| InvokeError::NameNotFound { path: path.to_string() })?;
        walked = walked.child(component);
    }
    Ok(current)
}

/// Binds `path` to `entry`, creating missing parent directories on the way.
pub async fn bind(ctx: &Ctx, root: &RawRef, path: &Path, entry: Entry) -> Result<(), InvokeError> {
    let (parent, name) = path.split_last().ok_or_else(|| InvokeError::invalid("the root cannot be bound"))?;
    let mut dir: Ref<Directory> = Ref::from_raw(root.clone());
    for component in parent.components() {
        dir = match dir.lookup(ctx, component.clone()).await? {
            Some(e) if e.class == DIRECTORY => Ref::from_raw(e.raw()),
            Some(e) => return Err(not_a_directory(component, &e)),
            None => {
                let new: Ref<Directory> = ctx.create(&Directory::default()).await?;
                let readable = ctx.attenuate(&new, Rights::READ)?;
                let entry = Entry { id: new.id(), class: DIRECTORY.into(), cap: readable.cap().cloned() };
                match dir.bind(ctx, component.clone(), entry).await {
                    Ok(()) => new,
                    // Another thread made it first: use theirs.
                    Err(e) if is_already_bound(&e) => match dir.lookup(ctx, component.clone()).await? {
                        Some(e) if e.class == DIRECTORY => Ref::from_raw(e.raw()),
                        _ => return Err(InvokeError::NameNotFound { path: parent.to_string() }),
                    },
                    Err(e) => return Err(e),
                }
            }
        };
    }
    dir.bind(ctx, name.to_string(), entry).await
}

/// Removes the binding of `path`; returns what it was bound to. The object stays.
pub async fn unbind(ctx: &Ctx, root: &RawRef, path: &Path) -> Result<Entry, InvokeError> {
    let (parent, name) = path.split_last().ok_or_else(|| InvokeError::invalid("the root cannot be unbound"))?;
    let dir = as_directory(&resolve(ctx, root, &parent).await?, &parent)?;
    dir.unbind(ctx, name.to_string()).await.map_err(|e| match e {
        e if matches!(e.app_detail::<NameError>(), Some(NameError::NotBound { .. })) => {
            InvokeError::NameNotFound { path: path.to_string() }
        }
        other => other,
    })
}

/// The entries of the directory at `path`, all of them, in name order.
pub async fn list(ctx: &Ctx, root: &RawRef, path: &Path) -> Result<Vec<(String, Entry)>, InvokeError> {
    let dir = as_directory(&resolve(ctx, root, path).await?, path)?;
    let mut out: Vec<(String, Entry)> = Vec::new();
    loop {
        let after = out.last().map(|(n, _)| n.clone());
        let page = dir.list(ctx, after, crate::directory::MAX_LIST).await?;
        let done = page.len() < crate::directory::MAX_LIST as usize;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

fn as_directory(entry: &Entry, path: &Path) -> Result<Ref<Directory>, InvokeError> {
    if entry.class != DIRECTORY {
        return Err(InvokeError::invalid(format!("`{path}` is a {}, not a directory", entry.class)));
    }
    Ok(Ref::from_raw(entry.raw()))
}

fn not_a_directory(component: &str, e: &Entry) -> InvokeError {
    InvokeError::invalid(format!("`{component}` is a {}, not a directory", e.class))
}

/// Whether an error from `Directory::bind` means the name is taken.
pub fn is_already_bound(e: &InvokeError) -> bool {
    matches!(e.app_detail::<NameError>(), Some(NameError::AlreadyBound { .. }))
}
