//! `clouds whoami` and `clouds cap ...`: the wallet's key and capabilities.

use crate::args::CapCommand;
use crate::commands::print_json;
use crate::exit::CliError;
use crate::target::{parse_target, resolve};
use capability::{Restrict, Token};
use client::{Client, Wallet};
use clouds::InvokeError;
use std::path::Path;

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
            let token = Token::from_cap(&cap).map_err(deny)?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let restrict = Restrict { rights: Some(rights), methods, expires: expires.map(|e| now + e) };
            let wallet = client.wallet();
            let granted = token.attenuate(wallet.key(), restrict, to.unwrap_or(wallet.public())).map_err(deny)?;
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
