//! RoutingTable tests: declare, bind, delete and route rules, each checked against RabbitMQ.
