//! A node binary with a class of its own: `WordCount` keeps a count per word in its
//! storage pages. Everything else (config, flags, store, RPC, shutdown) is the standard
//! `objectd`; the class is registered beside the standard ones.
//!
//!     cargo run -p examples --bin wordcount-node -- --id 1 --data /tmp/wc
//!     clouds create WordCount --name wc
//!     clouds invoke wc.add "the cat and the hat"
//!     clouds invoke wc.count the          # 2
//!     clouds invoke wc.top 3

use clouds::{methods, Ctx, InvokeError, Object};
use serde::{Deserialize, Serialize};

#[derive(Object, Default, Serialize, Deserialize)]
pub struct WordCount {
    /// Words counted so far, repeats included.
    total: u64,
}

#[methods]
impl WordCount {
    /// Counts the words of `text`; returns how many it counted.
    pub async fn add(&mut self, ctx: &Ctx, text: String) -> Result<u64, InvokeError> {
        let mut n = 0;
        for word in text.split_whitespace().map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase()) {
            if word.is_empty() {
                continue;
            }
            let count: u64 = ctx.storage().get_value(word.as_bytes()).await?.unwrap_or(0);
            ctx.storage().put_value(word.as_bytes(), &(count + 1))?;
            n += 1;
        }
        self.total += n;
        Ok(n)
    }

    pub async fn count(&self, ctx: &Ctx, word: String) -> Result<u64, InvokeError> {
        Ok(ctx.storage().get_value(word.to_lowercase().as_bytes()).await?.unwrap_or(0))
    }

    /// The `n` most frequent words (scans the first 10 000 distinct words).
    pub async fn top(&self, ctx: &Ctx, n: u32) -> Result<Vec<(String, u64)>, InvokeError> {
        let mut all: Vec<(String, u64)> = ctx
            .storage()
            .range(b"", None, 10_000)
            .await?
            .into_iter()
            .map(|(k, v)| Ok((String::from_utf8_lossy(&k).into_owned(), clouds::object::decode_state(&v)?)))
            .collect::<Result<_, InvokeError>>()?;
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n as usize);
        Ok(all)
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}

// The allocator every node binary declares (see `objectd::daemon::Allocator`).
#[global_allocator]
static ALLOCATOR: objectd::daemon::Allocator = objectd::daemon::Allocator;

fn main() -> std::process::ExitCode {
    match objectd::Registry::standard().with::<WordCount>() {
        Ok(registry) => objectd::daemon::main(registry),
        Err(e) => {
            eprintln!("wordcount-node: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
