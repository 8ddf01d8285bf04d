//! `clouds whoami` and `clouds cap ...`: the wallet's key and capabilities.

use crate::args::CapCommand;
use crate::commands::print_json;
use crate::exit::CliError;
use crate::target::{parse_target, resolve};
use capability::{Restrict, Token};
use client::{Client, Wallet};
use clouds::InvokeError;
use std::path::Path;

/// `cap` narrowed by `restrict`, signed by this wallet, made out to `to` (default: this wallet).
fn narrowed(
    client: &Client,
    cap: &clouds::Cap,
    restrict: Restrict,
    to: Option<capability::PublicKey>,
) -> Result<Token, CliError> {
    let token = Token::from_cap(cap).map_err(deny)?;
    let wallet = client.wallet();
    token.attenuate(wallet.key(), restrict, to.unwrap_or(wallet.public())).map_err(deny)
}

/// `clouds mkdir PATH [--for KEY]`.
pub async fn mkdir(
    client: &Client,
    json: bool,
    path: &str,
    owner: Option<capability::PublicKey>,
) -> Result<(), CliError> {
    let path: naming::Path = path.parse().map_err(CliError::Usage)?;
    if path.is_root() {
        return Err(CliError::Usage("the root `/` exists already".into()));
    }
    let root = crate::target::root(client).await?;
    let ctx = client.ctx();
    if let Ok(entry) = naming::resolve(&ctx, &root, &path).await {
        return Err(CliError::NameTaken { path: path.to_string(), id: entry.id });
    }
    let dir = client.create("Directory", protocol::wire::InitialState::Default).await?;
    // Readable by whoever can read the parent, as the directories `bind` makes.
    let readable = ctx.attenuate_raw(&dir, clouds::Rights::READ)?;
    let entry = naming::Entry { id: dir.id, class: "Directory".into(), cap: readable.cap };
    if let Err(e) = naming::bind(&ctx, &root, &path, entry).await {
        let _ = client.delete(dir).await;
        return Err(e.into());
    }
    let token = match owner {
        Some(key) => {
            let cap = client.capability_for(&dir).ok_or_else(|| InvokeError::Denied {
                reason: format!("your wallet holds no capability for the new directory {}", dir.id),
            })?;
            Some(narrowed(client, &cap, Restrict::default(), Some(key))?.to_text())
        }
        None => None,
    };
    if json {
        print_json(&serde_json::json!({ "path": path.to_string(), "id": dir.id, "token": token }));
    } else {
        match token {
            Some(t) => println!("{path} ({}); for its owner to import (`clouds cap import`):\n{t}", dir.id),
            None => println!("{path} ({})", dir.id),
        }
    }
    Ok(())
}

pub fn whoami(wallet: &Wallet, dir: &Path, json: bool) -> Result<(), CliError> {
    if json {
        print_json(&serde_json::json!({ "key": wallet.public().to_string(), "wallet": dir }));
    } else {
        println!("{}", wallet.public());
    }
    Ok(())
}

pub fn import(wallet: &Wallet, text: &str, json: bool) -> Result<(), CliError> {
    let token = Token::from_text(text).map_err(|e| {
        CliError::Usage(format!("not a capability ({e}); expected the `cap1.` text `cap grant` prints"))
    })?;
    wallet.add(&token.to_cap()).map_err(CliError::Failed)?;
    let g = token.grant();
    if json {
        print_json(&serde_json::json!({ "object": g.object, "rights": g.rights.to_string() }));
    } else {
        println!("imported: {} on {}", g.rights, g.object);
    }
    Ok(())
}

pub async fn run(client: &Client, command: CapCommand, json: bool) -> Result<(), CliError> {
    match command {
        CapCommand::Show { target } => {
            let only = match target {
                Some(t) => Some(resolve(client, &parse_target(&t)?).await?.0.id),
                None => None,
            };
            let tokens: Vec<Token> =
                client.wallet().all().into_iter().filter(|t| only.is_none_or(|id| t.grant().object == id)).collect();
            show(client.wallet(), &tokens, json);
            Ok(())
        }
        CapCommand::Grant { target, rights, methods, expires, to } => {
            let (target, _) = resolve(client, &parse_target(&target)?).await?;
            let cap = client.capability_needing(&target, clouds::Rights::DELEGATE).ok_or_else(|| {
                InvokeError::Denied { reason: format!("your wallet holds no capability for {}", target.id) }
            })?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let restrict = Restrict { rights: Some(rights), methods, expires: expires.map(|e| now + e) };
            let granted = narrowed(client, &cap, restrict, to)?;
            if json {
                print_json(&serde_json::json!({ "token": granted.to_text() }));
            } else {
                println!("{}", granted.to_text());
            }
            Ok(())
        }
        CapCommand::Revoke { target } => {
            let (target, _) = resolve(client, &parse_target(&target)?).await?;
            let id = target.id;
            let fresh = client.revoke(target, client.wallet().public()).await?;
            if json {
                print_json(&serde_json::json!({ "object": id, "token": fresh.to_text() }));
            } else {
                println!("revoked every earlier capability for {id}; your new owner capability is in your wallet");
            }
            Ok(())
        }
        CapCommand::Import { .. } => unreachable!("needs no node; handled before connecting"),
    }
}

fn deny(e: capability::Denied) -> CliError {
    CliError::Invoke(e.into())
}

fn show(wallet: &Wallet, tokens: &[Token], json: bool) {
    let me = wallet.public();
    let rows: Vec<serde_json::Value> = tokens
        .iter()
        .map(|t| {
            let g = t.grant();
            serde_json::json!({
                "object": g.object, "rights": g.rights.to_string(), "methods": g.methods, "expires": g.expires,
                "epoch": g.epoch, "holder": g.holder.to_string(), "yours": g.holder == me,
                "issuer": t.cert.node, "links": t.links.len(), "token": t.to_text(),
            })
        })
        .collect();
    if json {
        print_json(&rows);
        return;
    }
    if rows.is_empty() {
        println!("no capabilities");
    }
    for t in tokens {
        let g = t.grant();
        let methods = g.methods.as_ref().map_or("all methods".to_string(), |m| format!("methods {}", m.join(",")));
        let expires = g.expires.map_or("no expiry".to_string(), |e| format!("expires at {e} (unix s)"));
        let holder = if g.holder == me { "held by you".to_string() } else { format!("held by {}", g.holder) };
        println!("{}  {}  {methods}, {expires}, epoch {}, {holder}", g.object, g.rights, g.epoch);
        println!("  {}", t.to_text());
    }
}
