global using Ingest.Testing;
global using Xunit;
