"""A GPU fleet on debci and RabbitMQ: glue, never a scheduler.

``profiles`` reads fleet files (a worker's hardware profile and tag);
``route`` decides which profiles fit a package; ``enqueue`` publishes
debci's requests; ``broker`` is the AMQP transport.

May import: ``base``, ``spec``, ``detect``, ``source``.
"""
