namespace Ingest.Grains.Interfaces;

/// <summary>
/// The calls a gateway makes to itself before it says it is ready (docs/OPERATIONS.md "Warm-up before ready"): real
/// sockets, grains and Redis writes, so a fresh node's code is compiled before the first real call, but nothing a
/// consumer, an operator or a metric sees. Their grain keys begin with <see cref="Prefix"/>, which no real stream id
/// can (CONTRACT §5 allows only A-Z a-z 0-9 . _ : -); their Redis keys live under <see cref="KeyNamespace"/>, not
/// beside real calls' keys, and expire within <see cref="Retention"/> of their stop.
/// </summary>
public static class WarmupCalls
{
    public const string Prefix = "~warmup~";

    public const string KeyNamespace = "ingest:warmup:";

    /// <summary>Their calls stream and open-calls set (the scheme of <c>ingest:calls</c>, under <see cref="KeyNamespace"/>).</summary>
    public const string CallsKey = KeyNamespace + "calls";

    public const string OpenKey = "{" + CallsKey + "}:open";

    public static readonly TimeSpan Retention = TimeSpan.FromSeconds(10);

    public static bool Is(string streamId) => streamId.StartsWith(Prefix, StringComparison.Ordinal);
}
