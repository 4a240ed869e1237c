namespace Ingest.Grains;

/// <summary>Audio bytes all call grains of this silo hold unwritten (the silo-wide byte budget, CONTRACT §7).</summary>
internal static class SiloBuffers
{
    private static long _bytes;

    public static long Bytes => Interlocked.Read(ref _bytes);

    public static void Add(long bytes)
    {
        if (bytes != 0)
        {
            Interlocked.Add(ref _bytes, bytes);
        }
    }
}
