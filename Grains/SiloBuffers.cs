namespace Ingest.Grains;

/// <summary>
/// Bytes all call grains of one silo hold unwritten (the silo-wide byte budget, CONTRACT §7). A service of the silo,
/// not a static: two silos in one process (a test cluster) each have their own.
/// </summary>
public sealed class SiloBuffers
{
    private long _bytes;

    public long Bytes => Interlocked.Read(ref _bytes);

    public void Add(long bytes)
    {
        if (bytes != 0)
        {
            Interlocked.Add(ref _bytes, bytes);
        }
    }
}
