"""`ncb-connector …`: parses the command line, calls the connector, prints the outcome."""

from __future__ import annotations

import click

from connector.cli.agencies import agencies
from connector.cli.config import config
from connector.cli.db import db
from connector.cli.demo import demo
from connector.cli.enquiries import enquiries
from connector.cli.keys import keys
from connector.cli.node import init, run
from connector.cli.notifications import notifications
from connector.cli.peers import peers
from connector.cli.policy import policy
from connector.cli.query import query
from connector.cli.records import records
from connector.cli.search import search
from connector.logs import configure_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ncb-connector")
def main() -> None:
    """A National Central Bureau's connector: answers peers' signed queries under the NCB's
    policy, logs every enquiry, and asks peers on behalf of national agencies."""
    configure_logging(fmt="auto", level="warning")


main.add_command(init)
main.add_command(run)
main.add_command(config)
main.add_command(keys)
main.add_command(peers)
main.add_command(agencies)
main.add_command(db)
main.add_command(records)
main.add_command(policy)
main.add_command(enquiries)
main.add_command(notifications)
main.add_command(query)
main.add_command(search)
main.add_command(demo)
