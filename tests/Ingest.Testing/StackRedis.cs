using StackExchange.Redis;

namespace Ingest.Testing;

/// <summary>
/// The Redis a test stack publishes to: a redis-server of its own (stopped with the stack), or one the test owns and
/// disposes itself (e.g. a <see cref="RedisClusterServer"/>), with a shared connection to it either way.
/// </summary>
public sealed class StackRedis : IAsyncDisposable
{
    private readonly RedisServer? _server;

    private StackRedis(RedisServer? server, string connectionString, IConnectionMultiplexer connection)
    {
        _server = server;
        ConnectionString = connectionString;
        Connection = connection;
    }

    /// <summary>What the stack's processes get as REDIS_URL.</summary>
    public string ConnectionString { get; }

    /// <summary>A shared connection for the test's own reads.</summary>
    public IConnectionMultiplexer Connection { get; }

    /// <summary>The stack's own redis-server; on a Redis the test owns there is none, and this throws.</summary>
    public RedisServer Server => _server ?? throw new InvalidOperationException($"this stack runs on a Redis the test owns ({ConnectionString}), not a redis-server of its own");

    /// <summary>A redis-server of the stack's own: <paramref name="server"/>, or a new one on a free port.</summary>
    public static async Task<StackRedis> OwnAsync(RedisServer? server = null)
    {
        server ??= await RedisServer.StartAsync();
        return new StackRedis(server, server.ConnectionString, await ConnectAsync(server.ConnectionString));
    }

    /// <summary>A Redis the test owns and disposes itself.</summary>
    public static async Task<StackRedis> OutsideAsync(string connectionString) =>
        new(null, connectionString, await ConnectAsync(connectionString));

    /// <summary>Closes the connection, then stops the stack's own redis-server if it has one.</summary>
    public async ValueTask DisposeAsync()
    {
        Connection.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    private static async Task<IConnectionMultiplexer> ConnectAsync(string connectionString) =>
        await ConnectionMultiplexer.ConnectAsync(connectionString + ",abortConnect=false");
}
