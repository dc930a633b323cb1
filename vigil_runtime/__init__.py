"""What every Vigil process shares, whatever it is: the settings, logging and metrics, the Kafka
topics, the database engine and its migrations, and the waiting out of a lost dependency. The
worker (`streams/`), the services (`services/`) and the migrations import it; it imports neither."""
