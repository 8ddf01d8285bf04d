//! `Relay`: a test class that sends one thread through objects on chosen nodes, holds
//! objects while it calls others, and reports deadlines, for tests of threads across nodes.

use clouds::{methods, Ctx, InvokeError, Object, Ref, Rights};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Object, Default, Serialize, Deserialize)]
pub struct Relay {
    visits: u64,
}

#[methods]
impl Relay {
    /// Enters each object of `rest` in turn, as writes; returns the node of every hop.
    pub async fn pass(&mut self, ctx: &Ctx, rest: Vec<Ref<Relay>>) -> Result<Vec<u16>, InvokeError> {
        self.visits += 1;
        let mut nodes = vec![ctx.node().map_or(0, |n| n.0)];
        if let Some((next, tail)) = rest.split_first() {
            nodes.extend(next.pass(ctx, tail.to_vec()).await?);
        }
        Ok(nodes)
    }

    /// `pass` through `rest` (each of those commits on its own, outside an atomic action),
    /// then fails: what an atomic call undoes.
    pub async fn pass_then_fail(&mut self, ctx: &Ctx, rest: Vec<Ref<Relay>>) -> Result<(), InvokeError> {
        self.visits += 1;
        if let Some((next, tail)) = rest.split_first() {
            next.pass(ctx, tail.to_vec()).await?;
        }
        Err(InvokeError::invalid("failing after the calls, as asked"))
    }

    /// `pass` through `rest`, then sleeps `ms` (past the deadline, if it is short).
    pub async fn pass_then_sleep(&mut self, ctx: &Ctx, rest: Vec<Ref<Relay>>, ms: u64) -> Result<(), InvokeError> {
        self.visits += 1;
        if let Some((next, tail)) = rest.split_first() {
            next.pass(ctx, tail.to_vec()).await?;
        }
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }

    /// `pass` as reads (a thread may re-enter an object it reads).
    pub async fn look(&self, ctx: &Ctx, rest: Vec<Ref<Relay>>) -> Result<Vec<u16>, InvokeError> {
        let mut nodes = vec![ctx.node().map_or(0, |n| n.0)];
        if let Some((next, tail)) = rest.split_first() {
            nodes.extend(next.look(ctx, tail.to_vec()).await?);
        }
        Ok(nodes)
    }

    /// Holds this object for writing, waits `ms`, then calls `other.pass`: two of these
    /// crossing over (a -> b while b -> a) wait for each other.
    pub async fn hold_then_pass(&mut self, ctx: &Ctx, other: Ref<Relay>, ms: u64) -> Result<Vec<u16>, InvokeError> {
        self.visits += 1;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        other.pass(ctx, Vec::new()).await
    }

    pub async fn slow(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }

    /// Calls `other.slow(ms)` from inside this object.
    pub async fn call_slow(&self, ctx: &Ctx, other: Ref<Relay>, ms: u64) -> Result<u64, InvokeError> {
        other.slow(ctx, ms).await
    }

    /// [time left here, time left in a nested call to `other`], in ms.
    pub async fn deadlines(&self, ctx: &Ctx, other: Ref<Relay>) -> Result<[u64; 2], InvokeError> {
        let here = ctx.remaining().map_or(0, |d| d.as_millis() as u64);
        let there = other.remaining(ctx).await?;
        Ok([here, there])
    }

    /// Time left until the thread's deadline, in ms.
    pub fn remaining(&self, ctx: &Ctx) -> u64 {
        ctx.remaining().map_or(0, |d| d.as_millis() as u64)
    }

    /// Narrows `other` to read-only here, reads through the narrowed reference, then tries
    /// to write through it; returns the visits read and the write's error.
    pub async fn narrow_then_use(&self, ctx: &Ctx, other: Ref<Relay>) -> Result<(u64, String), InvokeError> {
        let read_only = ctx.attenuate(&other, Rights::READ)?;
        let visits = read_only.visits(ctx).await?;
        let write = match read_only.pass(ctx, Vec::new()).await {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        Ok((visits, write))
    }

    /// Counts a visit, then moves this object to node `to` once the visit is committed.
    pub fn go(&mut self, ctx: &Ctx, to: u16) -> Result<u64, InvokeError> {
        self.visits += 1;
        ctx.migrate_to(clouds::NodeId(to))?;
        Ok(self.visits)
    }

    /// Moves `other` to node `to` from inside this object's method.
    pub async fn send(&self, ctx: &Ctx, other: Ref<Relay>, to: u16) -> Result<(), InvokeError> {
        ctx.migrate(&other, clouds::NodeId(to), clouds::Strategy::Eager).await
    }

    pub fn visits(&self) -> u64 {
        self.visits
    }
}
