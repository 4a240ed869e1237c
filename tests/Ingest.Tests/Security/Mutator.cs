using System.Text;
using System.Text.Json.Nodes;

namespace Ingest.Tests.Security;

/// <summary>Hostile variants of good protocol messages: bit flips, byte noise, truncation, field swaps, huge values.</summary>
public sealed class Mutator(int seed)
{
    private static readonly string[] HugeValues =
    [
        "9223372036854775807", "9223372036854775808", "-9223372036854775809", "-1", "1e400", "-0", "0.5", "1000000000",
        "\"1000000000Hz\"", "\"99999999999999999999999999kbps\"", "\"NaN\"", "\"\"", "null", "true", "[]", "{}",
        "\"" + new string('9', 5000) + "\"", "\"" + new string('A', 3000) + "=\"", "\"\\u0000\\ud800\"",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    ];

    private readonly Random _random = new(seed);

    public string LastStrategy { get; private set; } = string.Empty;

    public byte[] Mutate(byte[] original)
    {
        switch (_random.Next(7))
        {
            case 0:
                LastStrategy = "bit flips";
                return BitFlips(original);
            case 1:
                LastStrategy = "byte noise";
                return ByteNoise(original);
            case 2:
                LastStrategy = "truncation";
                return original[.._random.Next(original.Length)];
            case 3:
                LastStrategy = "field swap";
                return TreeMutation(original, swap: true);
            case 4:
                LastStrategy = "huge value";
                return TreeMutation(original, swap: false);
            case 5:
                LastStrategy = "splice";
                var cut = _random.Next(original.Length);
                var other = _random.Next(original.Length);
                return [.. original[..cut], .. original[other..]];
            default:
                LastStrategy = "bit flips + huge value";
                return BitFlips(TreeMutation(original, swap: false));
        }
    }

    private byte[] BitFlips(byte[] original)
    {
        var bytes = (byte[])original.Clone();
        for (var flips = _random.Next(1, 6); flips > 0 && bytes.Length > 0; flips--)
        {
            bytes[_random.Next(bytes.Length)] ^= (byte)(1 << _random.Next(8));
        }

        return bytes;
    }

    private byte[] ByteNoise(byte[] original)
    {
        var bytes = (byte[])original.Clone();
        for (var n = _random.Next(1, 4); n > 0 && bytes.Length > 0; n--)
        {
            bytes[_random.Next(bytes.Length)] = (byte)_random.Next(256);
        }

        return bytes;
    }

    private byte[] TreeMutation(byte[] original, bool swap)
    {
        try
        {
            return TryTreeMutation(original, swap);
        }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException or ArgumentException)
        {
            return ByteNoise(original);
        }
    }

    private byte[] TryTreeMutation(byte[] original, bool swap)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(original);
        }
        catch (System.Text.Json.JsonException)
        {
            return ByteNoise(original);
        }

        var slots = new List<(JsonObject Parent, string Key)>();
        Collect(root, slots);
        if (slots.Count == 0)
        {
            return ByteNoise(original);
        }

        var (parent, key) = slots[_random.Next(slots.Count)];
        if (swap && slots.Count > 1)
        {
            var (otherParent, otherKey) = slots[_random.Next(slots.Count)];
            var a = parent[key]?.DeepClone();
            var b = otherParent[otherKey]?.DeepClone();
            parent[key] = b;
            otherParent[otherKey] = a;
        }
        else
        {
            parent[key] = JsonNode.Parse(HugeValues[_random.Next(HugeValues.Length)]);
        }

        return Encoding.UTF8.GetBytes(root!.ToJsonString());
    }

    private static void Collect(JsonNode? node, List<(JsonObject Parent, string Key)> slots)
    {
        if (node is not JsonObject obj)
        {
            return;
        }

        foreach (var (key, value) in obj.ToList())
        {
            slots.Add((obj, key));
            Collect(value, slots);
        }
    }
}
