global using Xunit;
global using Ingest.Testing;
