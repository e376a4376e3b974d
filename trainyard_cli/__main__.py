from trainyard_cli.main import app

app(prog_name="trainyard")
