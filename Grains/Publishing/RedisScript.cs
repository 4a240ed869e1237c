using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace Ingest.Grains.Publishing;

/// <summary>
/// A Lua script embedded beside the writer (<c>Scripts/*.lua</c>), run by its SHA1: given the text, the client would
/// hash all of it on every call to find the SHA1. A node that lacks the script (restarted, or a cluster node not used
/// yet) answers NOSCRIPT without running anything, and the text is then sent whole, which loads it there.
/// </summary>
internal sealed class RedisScript
{
    public static readonly RedisScript Batch = Load("batch.lua");

    public static readonly RedisScript Copy = Load("copy.lua");

    private readonly string _text;
    private readonly byte[] _sha;

    private RedisScript(string text)
    {
        _text = text;
        _sha = SHA1.HashData(Encoding.UTF8.GetBytes(text));
    }

    public async Task<RedisResult> RunAsync(IDatabase db, RedisKey[] keys, RedisValue[] args)
    {
        try
        {
            return await db.ScriptEvaluateAsync(_sha, keys, args);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            return await db.ScriptEvaluateAsync(_text, keys, args);
        }
    }

    private static RedisScript Load(string name)
    {
        using var stream = typeof(RedisScript).Assembly.GetManifestResourceStream("Ingest.Grains.Publishing.Scripts." + name)
            ?? throw new InvalidOperationException("script " + name + " is not embedded");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return new RedisScript(reader.ReadToEnd());
    }
}
