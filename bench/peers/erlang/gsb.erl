%% The peer baseline for `bench -- tarpc`: a gen_server on one Erlang node answering a
%% null call (`get`) from callers on another node over Erlang distribution (TCP on
%% loopback), at 1, 64 and 256 concurrent callers. Run by run.sh.
-module(gsb).
-behaviour(gen_server).
-export([server/0, client/2]).
-export([init/1, handle_call/3, handle_cast/2]).

server() ->
    {ok, _} = gen_server:start({local, counter}, ?MODULE, 0, []),
    receive stop -> ok end.

init(N) -> {ok, N}.
handle_call(get, _From, N) -> {reply, N, N}.
handle_cast(_, N) -> {noreply, N}.

%% Calls for Seconds at each concurrency, printing one line each.
client(Node, Seconds) ->
    Target = {counter, Node},
    _ = gen_server:call(Target, get),
    lists:foreach(fun(C) -> measure(Target, C, Seconds) end, [1, 64, 256]).

measure(Target, Callers, Seconds) ->
    Self = self(),
    End = erlang:monotonic_time(millisecond) + Seconds * 1000,
    Pids = [spawn_link(fun() -> Self ! {done, loop(Target, End, 0)} end) || _ <- lists:seq(1, Callers)],
    Total = lists:sum([receive {done, N} -> N end || _ <- Pids]),
    Rate = Total / Seconds,
    io:format("| Erlang gen_server:call over distribution, ~B callers | ~B | ~.1f us |~n",
              [Callers, round(Rate), Callers * 1.0e6 / Rate]).

loop(Target, End, N) ->
    case erlang:monotonic_time(millisecond) >= End of
        true -> N;
        false -> _ = gen_server:call(Target, get), loop(Target, End, N + 1)
    end.
