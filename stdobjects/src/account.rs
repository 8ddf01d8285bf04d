//! `Account`: a balance that moves between accounts by nested invocations.

use clouds::{methods, Ctx, InvokeError, Object, Ref};
use serde::{Deserialize, Serialize};

#[derive(Object, Default, Serialize, Deserialize)]
pub struct Account {
    balance: u64,
}

impl Account {
    /// An account holding `balance`, to create (`Client::create_object`).
    pub fn with_balance(balance: u64) -> Account {
        Account { balance }
    }
}

#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
pub enum AccountError {
    #[error("insufficient funds: balance is {balance}, asked for {requested}")]
    InsufficientFunds { balance: u64, requested: u64 },
    #[error("a transfer to the same account is not allowed")]
    SameAccount,
    #[error(
        "a deposit of {amount} on a balance of {balance} overflows (the most an account holds is {}); nothing changed",
        u64::MAX
    )]
    Overflow { balance: u64, amount: u64 },
}

#[methods]
impl Account {
    pub fn balance(&self) -> u64 {
        self.balance
    }

    /// Returns the new balance; one that would not fit changes nothing.
    pub fn deposit(&mut self, amount: u64) -> Result<u64, AccountError> {
        let balance = self.balance;
        self.balance = balance.checked_add(amount).ok_or(AccountError::Overflow { balance, amount })?;
        Ok(self.balance)
    }

    /// Returns the new balance, or fails without change if the balance is too low.
    pub fn withdraw(&mut self, amount: u64) -> Result<u64, AccountError> {
        if amount > self.balance {
            return Err(AccountError::InsufficientFunds { balance: self.balance, requested: amount });
        }
        self.balance -= amount;
        Ok(self.balance)
    }

    /// Moves `amount` to `to`: the thread withdraws here, then continues into `to` to deposit.
    /// Atomic: the withdrawal and the deposit commit together on both nodes, or neither
    /// does (a failed deposit, a deadline, a crash of either node before the decision).
    #[atomic]
    pub async fn transfer(&mut self, ctx: &Ctx, to: Ref<Account>, amount: u64) -> Result<u64, InvokeError> {
        if Some(to.id()) == ctx.this() {
            return Err(InvokeError::app(AccountError::SameAccount));
        }
        self.withdraw(amount).map_err(InvokeError::app)?;
        to.deposit(ctx, amount).await?;
        Ok(self.balance)
    }
}
