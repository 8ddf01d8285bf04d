//! The ractor_cluster peer: an actor on one node answering a null call (`Get`) from
//! callers on another node (two processes, TCP on loopback), at 1, 64 and 256 concurrent
//! callers: `ractor-peer server PORT` and `ractor-peer client PORT SERVER_PORT` (run.sh
//! starts both).

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use std::time::{Duration, Instant};

const GROUP: &str = "bench";

struct Counter;

#[derive(RactorClusterMessage)]
enum CounterMsg {
    #[rpc]
    Get(RpcReplyPort<u64>),
}

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<Self::Msg>, _: ()) -> Result<u64, ActorProcessingErr> {
        ractor::pg::join(GROUP.to_string(), vec![myself.get_cell()]);
        Ok(0)
    }

    async fn handle(&self, _: ActorRef<Self::Msg>, msg: Self::Msg, state: &mut u64) -> Result<(), ActorProcessingErr> {
        match msg {
            CounterMsg::Get(reply) => {
                let _ = reply.send(*state);
            }
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = args[1].parse().expect("port");
    let name = format!("{}-{port}", args[0]);
    let server =
        ractor_cluster::NodeServer::new(port, "cookie".into(), name, "localhost".into(), None, None)
            .with_listen_addr("127.0.0.1".parse().unwrap());
    let (node, _) = Actor::spawn(None, server, ()).await.expect("node server");
    if args[0] == "server" {
        let (_counter, handle) = Actor::spawn(None, Counter, ()).await.expect("counter");
        let _ = handle.await;
        return;
    }
    let peer: u16 = args[2].parse().expect("server port");
    ractor_cluster::client_connect(&node, format!("127.0.0.1:{peer}")).await.expect("connect");
    // The server's actor, once the groups are synchronized.
    let began = Instant::now();
    let remote = loop {
        let found = ractor::pg::get_members(&GROUP.to_string()).into_iter().find(|a| !a.get_id().is_local());
        if let Some(cell) = found {
            break ActorRef::<CounterMsg>::from(cell);
        }
        assert!(began.elapsed() < Duration::from_secs(20), "the server's actor never appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = 2;
    for callers in [1usize, 64, 256] {
        let end = Instant::now() + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let remote = remote.clone();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while Instant::now() < end {
                        ractor::call!(remote, CounterMsg::Get).expect("call");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("caller");
        }
        let rate = total as f64 / seconds as f64;
        println!(
            "| ractor_cluster call! to a remote actor, {callers} callers | {} | {:.1} us |",
            rate.round(),
            callers as f64 * 1e6 / rate
        );
    }
    std::process::exit(0);
}
