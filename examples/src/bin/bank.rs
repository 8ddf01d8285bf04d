//! A bank on Clouds: accounts are persistent `Account` objects named `/bank/<name>`, placed
//! at random over the cluster's nodes, and each transfer is a thread that withdraws from
//! one account and continues into the other (often on another node) to deposit.
//! `Account::transfer` is atomic: the withdrawal and the deposit commit together or not at
//! all, whichever node dies when. Runs concurrent transfers, each with a call id; a
//! transfer that fails because a node is down (or its action was aborted, or it was a
//! deadlock victim) is retried with the same call id until the node is back, so it runs
//! exactly once. Then it checks that no money appeared or vanished.
//!
//! It acts for the wallet the `clouds` command uses (`--wallet`, `$CLOUDS_WALLET`, or
//! `~/.clouds/wallet`): the accounts it creates are its own, and each transfer passes the
//! destination account to the source account as a reference carrying a write-only
//! capability, attenuated from the owner's: enough to deposit, not to read or withdraw.
//!
//!     cargo run -p examples --bin bank -- --node 127.0.0.1:7100 --accounts 8 --transfers 200

use clap::Parser;
use client::CONNECT_TIMEOUT;
use client::{Client, Wallet};
use clouds::{InvokeError, RawRef, Ref, Rights};
use naming::{Entry, Path};
use protocol::wire::InitialState;
use protocol::Placement;
use std::sync::Arc;
use stdobjects::Account;

#[derive(Parser)]
struct Args {
    /// The node to talk to.
    #[arg(long, env = "CLOUDS_NODE", default_value = "127.0.0.1:7100")]
    node: std::net::SocketAddr,
    /// How many accounts (created under /bank/ the first time, reused after).
    #[arg(long, default_value_t = 8)]
    accounts: usize,
    /// How many transfers, run 16 at a time.
    #[arg(long, default_value_t = 200)]
    transfers: usize,
    /// The wallet to act for (default: ~/.clouds/wallet).
    #[arg(long, env = "CLOUDS_WALLET")]
    wallet: Option<std::path::PathBuf>,
}

const OPENING_BALANCE: u64 = 1_000;
/// How often one transfer is tried again (deadlock victim, aborted, a node down): with
/// the backoff below, about two minutes, time for a node to come back.
const MAX_RETRIES: u64 = 240;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Routed: each transfer goes straight to the node of the account it starts from.
    let wallet = Wallet::open(&args.wallet.unwrap_or_else(Wallet::default_dir)).map_err(anyhow::Error::msg)?;
    let client = Client::connect_with(args.node, CONNECT_TIMEOUT, Arc::new(wallet)).await?.routed().await?;
    let ctx = client.ctx();
    let root = RawRef::new(client.status().await?.root);
    if client.wallet().best(root.id).is_none() {
        client.root_capability().await?;
    }

    let mut accounts: Vec<Ref<Account>> = Vec::new();
    for i in 0..args.accounts {
        let path: Path = format!("/bank/acct-{i}").parse().map_err(anyhow::Error::msg)?;
        let account = match naming::resolve(&ctx, &root, &path).await {
            Ok(entry) => Ref::from_raw(RawRef { id: entry.id, cap: client.capability_for(&entry.raw()) }),
            Err(InvokeError::NameNotFound { .. }) => {
                // Spread the accounts over the cluster's nodes.
                let state = InitialState::Json(format!(r#"{{"balance": {OPENING_BALANCE}}}"#));
                let created = client.create_placed("Account", state, Placement::Random).await?;
                let entry = Entry { id: created.id, class: "Account".into(), cap: None };
                naming::bind(&ctx, &root, &path, entry).await?;
                Ref::from_raw(created)
            }
            Err(e) => return Err(e.into()),
        };
        accounts.push(account);
    }
    // What a transfer hands the source account: the destination, deposit-only.
    let payees: Vec<Ref<Account>> =
        accounts.iter().map(|a| ctx.attenuate(a, Rights::WRITE)).collect::<Result<_, _>>()?;
    let total_before = total(&ctx, &accounts).await?;
    let mut per_node = std::collections::BTreeMap::new();
    for a in &accounts {
        *per_node.entry(a.id().home().to_string()).or_insert(0) += 1;
    }
    println!("{} accounts under /bank, {} in total, on {:?}", accounts.len(), total_before, per_node);

    let (mut done, mut refused, mut retried) = (0, 0, 0);
    // Each run's call ids are its own: a rerun does new transfers.
    let run = uuid::Uuid::new_v4().simple().to_string();
    for batch in (0..args.transfers).collect::<Vec<_>>().chunks(16) {
        let runs = batch.iter().map(|&t| {
            let from = accounts[t % accounts.len()].raw().clone();
            let to = serde_json::to_value(payees[(t * 7 + 3) % accounts.len()].raw()).expect("a reference");
            let amount = (t as u64 * 37) % 400 + 1;
            let call = clouds::CallId(format!("bank-{run}-{t}"));
            let client = &client;
            async move {
                // Two transfers crossing over (a -> b while b -> a) wait for each other;
                // the node breaks the cycle by failing one with `Deadlock`, after rolling
                // it back everywhere. A node may be down. Either way nothing was done, or
                // it was done and the call id replays its reply: try again.
                let mut tries = 0;
                loop {
                    let args = [to.clone(), serde_json::json!(amount)];
                    match client.invoke_json(&from, "transfer", &args, Some(call.clone())).await {
                        Err(
                            InvokeError::Deadlock { .. }
                            | InvokeError::Aborted { .. }
                            | InvokeError::Unavailable { .. }
                            | InvokeError::DeadlineExceeded { .. },
                        ) if tries < MAX_RETRIES => {
                            tries += 1;
                            tokio::time::sleep(std::time::Duration::from_millis((5 * tries).min(500))).await;
                        }
                        other => return (other, tries),
                    }
                }
            }
        });
        for (result, tries) in futures::future::join_all(runs).await {
            retried += tries;
            match result {
                Ok(_) => done += 1,
                // Insufficient funds, or a transfer to itself: refused whole, nothing moved.
                Err(InvokeError::App { .. }) => refused += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
    let total_after = total(&ctx, &accounts).await?;
    println!("{done} transfers done, {refused} refused (insufficient funds or same account), {retried} retries (deadlock victims, aborted, a node down)");
    for (i, a) in accounts.iter().enumerate() {
        println!("  /bank/acct-{i} on {}: {}", a.id().home(), a.balance(&ctx).await?);
    }
    println!(
        "total before {total_before}, after {total_after}: {}",
        if total_before == total_after { "conserved" } else { "NOT CONSERVED" }
    );
    anyhow::ensure!(total_before == total_after, "money appeared or vanished");
    Ok(())
}

async fn total(ctx: &clouds::Ctx, accounts: &[Ref<Account>]) -> Result<u64, InvokeError> {
    let mut sum = 0;
    for a in accounts {
        sum += a.balance(ctx).await?;
    }
    Ok(sum)
}
