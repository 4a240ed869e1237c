using Ingest.Relay;

// The baseline of bench/run.sh: the gateway's endpoint contract with nothing behind it but XADD. No Orleans, no
// sequence tracking, no cursor: what a single process costs to move the same frames, to measure the system against.
var settings = RelaySettings.From(Environment.GetEnvironmentVariables());
// Same client tuning as the silo and gateway (ServiceDefaults/RedisUrl.cs), so the ratio measures the design.
var redisOptions = StackExchange.Redis.ConfigurationOptions.Parse(settings.RedisConfiguration);
redisOptions.SocketManager = StackExchange.Redis.SocketManager.ThreadPool;
var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(redisOptions);

var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.WebHost.UseUrls($"http://127.0.0.1:{settings.Port}");
builder.Services.AddSingleton(settings);
builder.Services.AddSingleton<StackExchange.Redis.IConnectionMultiplexer>(redis);
builder.Services.AddSingleton<RelayEndpoint>();

var app = builder.Build();
app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.FromSeconds(15) });
app.MapGet("/healthz", () => "ok");
app.Map("/v1/ingest", (HttpContext http, RelayEndpoint endpoint) => endpoint.HandleAsync(http));
await app.RunAsync();
